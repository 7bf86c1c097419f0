/**
 * A local stand-in for the three clouds' instance metadata services, answering the preemption
 * notice requests the way each one does (see src/fleet/spot.ts for the sources):
 *
 * - `aws` (IMDSv2): `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` in
 *   1..21600 (400 otherwise) and returns a token that expires after that many seconds;
 *   `GET /latest/meta-data/spot/instance-action` needs a live token in
 *   `X-aws-ec2-metadata-token` (401 otherwise), then answers 404 until `notify()` and
 *   `{"action", "time"}` after it.
 * - `gcp`: `GET /computeMetadata/v1/instance/preempted` needs `Metadata-Flavor: Google` (403
 *   otherwise) and answers `FALSE`, then `TRUE` after `notify()`, with the `Metadata-Flavor: Google`
 *   response header.
 * - `azure`: `GET /metadata/scheduledevents?api-version=…` and
 *   `GET /metadata/instance/compute/name?api-version=…&format=text` need `Metadata: true` and an
 *   `api-version` (400 otherwise); scheduled events are `{"DocumentIncarnation", "Events"}`, the
 *   incarnation growing with every change; `notify()` adds a Preempt of this VM, `addEvent()` any.
 *
 * Failure modes: `failNext(n, status)` answers the next n requests with that status;
 * `expireTokens()` makes every AWS token issued so far invalid. `requests` lists what was asked,
 * e.g. `PUT /latest/api/token`. Other paths answer 404, as the services do.
 */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { SpotProvider } from '../../src/fleet/spot';

export interface AzureEvent {
  EventId: string;
  EventType: string;
  ResourceType: string;
  Resources: string[];
  EventStatus: string;
  NotBefore: string;
  Description: string;
  EventSource: string;
  DurationInSeconds: number;
}

export interface NoticeOptions {
  /** AWS action (default terminate). */
  action?: string;
  /** When the machine goes away (AWS `time`, Azure `NotBefore`); default two minutes (AWS) / 30 s (Azure) from now. */
  at?: Date;
}

export class FakeMetadataServer {
  readonly requests: string[] = [];
  url = '';
  private noticeState: { action: string; at: Date } | undefined;
  private readonly tokens = new Map<string, number>();
  private failures: { left: number; status: number } = { left: 0, status: 500 };
  private readonly azureEvents: AzureEvent[] = [];
  private incarnation = 1;
  private readonly app: FastifyInstance;

  constructor(
    readonly provider: SpotProvider,
    readonly vmName = 'forgeline-gpu-0',
  ) {
    this.app = Fastify({ logger: false });
    this.app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    this.app.addHook('onRequest', async (req, reply) => {
      this.requests.push(`${req.method} ${req.url.split('?')[0]}`);
      if (this.failures.left > 0) {
        this.failures.left -= 1;
        return reply.code(this.failures.status).type('text/plain').send('injected failure');
      }
      return undefined;
    });
    if (provider === 'aws') this.aws();
    else if (provider === 'gcp') this.gcp();
    else this.azure();
  }

  async start(): Promise<this> {
    this.url = await this.app.listen({ host: '127.0.0.1', port: 0 });
    return this;
  }

  async close(): Promise<void> {
    await this.app.close();
  }

  /** The preemption notice from now on. */
  notify(options: NoticeOptions = {}): void {
    const at = options.at ?? new Date(Date.now() + (this.provider === 'aws' ? 120_000 : 30_000));
    this.noticeState = { action: options.action ?? 'terminate', at };
    if (this.provider === 'azure') {
      this.addEvent({ EventType: 'Preempt', Resources: [this.vmName], NotBefore: at.toUTCString(), Description: 'Spot eviction', DurationInSeconds: -1 });
    }
  }

  /** Azure: one more scheduled event (another VM's, a reboot, ...). */
  addEvent(event: Partial<AzureEvent>): void {
    this.azureEvents.push({
      EventId: randomBytes(8).toString('hex'),
      EventType: 'Reboot',
      ResourceType: 'VirtualMachine',
      Resources: [this.vmName],
      EventStatus: 'Scheduled',
      NotBefore: new Date(Date.now() + 600_000).toUTCString(),
      Description: '',
      EventSource: 'Platform',
      DurationInSeconds: 15,
      ...event,
    });
    this.incarnation += 1;
  }

  failNext(count: number, status = 500): void {
    this.failures = { left: count, status };
  }

  expireTokens(): void {
    for (const token of this.tokens.keys()) this.tokens.set(token, 0);
  }

  private aws(): void {
    this.app.put('/latest/api/token', async (req, reply) => {
      const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return reply.code(400).type('text/plain').send('Bad Request');
      const token = randomBytes(24).toString('base64');
      this.tokens.set(token, Date.now() + ttl * 1000);
      return reply.type('text/plain').header('x-aws-ec2-metadata-token-ttl-seconds', String(ttl)).send(token);
    });
    this.app.get('/latest/meta-data/spot/instance-action', async (req, reply) => {
      const token = req.headers['x-aws-ec2-metadata-token'];
      const expires = typeof token === 'string' ? this.tokens.get(token) : undefined;
      if (expires === undefined || expires <= Date.now()) return reply.code(401).type('text/plain').send('Unauthorized');
      if (!this.noticeState) return reply.code(404).type('text/html').send('<?xml version="1.0"?><html><body><h1>404 - Not Found</h1></body></html>');
      return reply.type('text/plain').send(JSON.stringify({ action: this.noticeState.action, time: this.noticeState.at.toISOString().replace(/\.\d{3}Z$/, 'Z') }));
    });
  }

  private gcp(): void {
    this.app.get('/computeMetadata/v1/instance/preempted', async (req, reply) => {
      if (req.headers['metadata-flavor'] !== 'Google') return reply.code(403).type('text/html').send('Missing Metadata-Flavor:Google header.');
      return reply.header('Metadata-Flavor', 'Google').type('application/text').send(this.noticeState ? 'TRUE' : 'FALSE');
    });
  }

  private azure(): void {
    const guard = (req: FastifyRequest, reply: FastifyReply): boolean => {
      if (req.headers.metadata !== 'true') {
        void reply.code(400).send({ error: 'Bad request. Required metadata header not specified' });
        return false;
      }
      if (!(req.query as Record<string, string>)['api-version']) {
        void reply.code(400).send({ error: 'Bad request. api-version was not specified in the request.' });
        return false;
      }
      return true;
    };
    this.app.get('/metadata/scheduledevents', async (req, reply) => {
      if (!guard(req, reply)) return reply;
      return reply.send({ DocumentIncarnation: this.incarnation, Events: this.azureEvents });
    });
    this.app.get('/metadata/instance/compute/name', async (req, reply) => {
      if (!guard(req, reply)) return reply;
      return reply.type('text/plain').send(this.vmName);
    });
  }
}

/** A started fake for `provider`. */
export function startFakeMetadataServer(provider: SpotProvider, vmName?: string): Promise<FakeMetadataServer> {
  return new FakeMetadataServer(provider, vmName).start();
}
