/**
 * Spot / preemptible machines (issue 13, item 2): a GPU worker on such a machine watches its
 * cloud's metadata endpoint for the preemption notice and, when it comes, stops as on SIGTERM
 * (no new tasks, running recipes checkpoint and exit, their attempts fail retryably as
 * `WorkerPreempted` so the stage resumes from the checkpoint on another worker), exiting before
 * the machine goes away. The cloud's own SIGTERM at shutdown takes the same path (workers/main.ts).
 *
 * What each provider's metadata service says, and how we read it:
 *
 * - **AWS** (EC2 Spot Instance interruption notices,
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/spot-instance-termination-notices.html):
 *   the notice comes two minutes before EC2 stops or terminates the instance (hibernation starts at
 *   once), and AWS recommends checking every 5 seconds. Through IMDSv2
 *   (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html):
 *   `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` (1..21600) returns a session
 *   token; `GET /latest/meta-data/spot/instance-action` with `X-aws-ec2-metadata-token` answers 404
 *   while there is no notice and 200 `{"action": "terminate"|"stop"|"hibernate", "time":
 *   "<ISO 8601 UTC>"}` once there is; an expired or unknown token gets 401, after which we take a
 *   new token and ask again.
 * - **GCP** (Compute Engine preemption / Spot VMs,
 *   https://cloud.google.com/compute/docs/instances/spot#preemption and
 *   https://cloud.google.com/compute/docs/metadata/querying-metadata): `GET
 *   /computeMetadata/v1/instance/preempted` with `Metadata-Flavor: Google` answers `FALSE`, and
 *   `TRUE` once preemption has begun; the VM then gets 30 seconds (ACPI G2 soft off) before it is
 *   stopped.
 * - **Azure** (Scheduled Events,
 *   https://learn.microsoft.com/azure/virtual-machines/linux/scheduled-events): `GET
 *   /metadata/scheduledevents?api-version=2020-07-01` with `Metadata: true` answers
 *   `{"DocumentIncarnation": n, "Events": [{"EventId", "EventType", "ResourceType", "Resources":
 *   [vm names], "EventStatus": "Scheduled"|"Started", "NotBefore": "<RFC 1123 date>"|"", ...}]}`.
 *   A Spot eviction is `EventType: "Preempt"`, scheduled at least 30 seconds ahead. Events of every
 *   VM of an availability set or scale-set placement group are delivered to all of them, so we act
 *   only on events whose `Resources` name this VM (`GET
 *   /metadata/instance/compute/name?api-version=2021-02-01&format=text`). The first request
 *   enables the service and can take up to two minutes to answer.
 *
 * Errors of the endpoint (refused, timed out, an unexpected status or body) are logged and the
 * next poll tries again: they never stop the worker. The watcher reports one notice, then stops.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { z } from 'zod';
import { ErrorType } from '../contracts/errors';

export type SpotProvider = 'aws' | 'gcp' | 'azure';
export const SPOT_PROVIDERS: readonly SpotProvider[] = ['aws', 'gcp', 'azure'];

/** Each metadata service's address on the machine (GCP's name resolves to 169.254.169.254 there). */
export const SPOT_METADATA_URLS: Readonly<Record<SpotProvider, string>> = {
  aws: 'http://169.254.169.254',
  gcp: 'http://metadata.google.internal',
  azure: 'http://169.254.169.254',
};

/** The notice each provider promises at least: AWS two minutes, GCP and Azure (Preempt) 30 seconds. */
export const SPOT_NOTICE_MS: Readonly<Record<SpotProvider, number>> = { aws: 120_000, gcp: 30_000, azure: 30_000 };

/** AWS's recommended interval, which we use for every provider. */
export const DEFAULT_SPOT_POLL_MS = 5_000;
/** IMDSv2 session tokens live at most six hours. */
export const AWS_TOKEN_MAX_TTL_SECONDS = 21_600;
const DEFAULT_REQUEST_TIMEOUT_MS = 3_000;
/** Azure's first Scheduled Events request enables the service and may take this long. */
const AZURE_FIRST_REQUEST_TIMEOUT_MS = 120_000;
/** A failing endpoint is logged at its first error, when the error changes, and then at most once a minute. */
const ERROR_LOG_INTERVAL_MS = 60_000;

export interface SpotNotice {
  provider: SpotProvider;
  /** AWS: terminate, stop or hibernate; GCP: preempted; Azure: Preempt. */
  action: string;
  /** When this worker saw the notice. */
  detectedAt: Date;
  /** When the machine goes away: AWS's `time`, Azure's `NotBefore`, else detection + the provider's notice. */
  deadline: Date;
  /** One line for logs and failure messages, e.g. "AWS spot instance-action terminate at 2026-12-03T10:02:00.000Z". */
  detail: string;
}

export interface SpotNoticeWatcherOptions {
  provider: SpotProvider;
  /** Base URL of the metadata service. Default: the provider's (SPOT_METADATA_URLS); tests point it at a fake. */
  metadataUrl?: string;
  /** Between polls. Default 5 s. */
  pollMs?: number;
  /** Per request. Default 3 s (Azure's first request: 2 minutes). */
  requestTimeoutMs?: number;
  /** TTL asked for AWS session tokens; a token is renewed after 90% of it. Default 21600 (six hours). */
  awsTokenTtlSeconds?: number;
  /** Where endpoint errors go (they are retried, never fatal). Default: console.warn. */
  onError?: (message: string) => void;
  /** Clock (tests). */
  now?: () => number;
}

const AwsInstanceAction = z.object({ action: z.string().min(1), time: z.string().min(1) });
const AzureScheduledEvents = z.object({
  DocumentIncarnation: z.number(),
  Events: z.array(
    z.object({
      EventId: z.string(),
      EventType: z.string(),
      Resources: z.array(z.string()).default([]),
      EventStatus: z.string().optional(),
      NotBefore: z.string().optional(),
    }),
  ),
});

/** A fetch that times out, naming what it asked for in its error. */
async function request(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.message);
    throw new Error(`${init.method ?? 'GET'} ${url}: ${why}`);
  }
}

async function unexpected(res: Response, url: string, method = 'GET'): Promise<Error> {
  const body = (await res.text().catch(() => '')).slice(0, 200);
  return new Error(`${method} ${url}: unexpected HTTP ${res.status}${body ? ` (${JSON.stringify(body)})` : ''}`);
}

/**
 * Polls one provider's metadata service for the preemption notice (see the module comment).
 * `start()` begins polling; `notice` resolves once, with the first notice seen, after which
 * polling stops. `check()` is one poll, for tests and for callers with their own loop.
 */
export class SpotNoticeWatcher {
  readonly provider: SpotProvider;
  readonly baseUrl: string;
  readonly pollMs: number;
  /** Resolves with the notice; never rejects. */
  readonly notice: Promise<SpotNotice>;
  private resolveNotice!: (n: SpotNotice) => void;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly now: () => number;
  private readonly onError: (message: string) => void;
  private readonly requestTimeoutMs: number;
  private readonly tokenTtlSeconds: number;
  private token: { value: string; renewAt: number } | undefined;
  private azureVmName: string | undefined;
  private azureAnswered = false;
  private lastError: { message: string; at: number } | undefined;

  constructor(options: SpotNoticeWatcherOptions) {
    this.provider = options.provider;
    this.baseUrl = (options.metadataUrl ?? SPOT_METADATA_URLS[options.provider]).replace(/\/+$/, '');
    this.pollMs = options.pollMs ?? DEFAULT_SPOT_POLL_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.tokenTtlSeconds = options.awsTokenTtlSeconds ?? AWS_TOKEN_MAX_TTL_SECONDS;
    if (!Number.isInteger(this.tokenTtlSeconds) || this.tokenTtlSeconds < 1 || this.tokenTtlSeconds > AWS_TOKEN_MAX_TTL_SECONDS) {
      throw new RangeError(`awsTokenTtlSeconds: expected a whole number of seconds in 1..${AWS_TOKEN_MAX_TTL_SECONDS}, got ${this.tokenTtlSeconds}`);
    }
    this.now = options.now ?? Date.now;
    this.onError = options.onError ?? ((m) => console.warn(m));
    this.notice = new Promise((resolve) => (this.resolveNotice = resolve));
  }

  /** Polls now and then every `pollMs` until a notice comes or `stop()`. The timer never keeps the process alive. */
  start(): this {
    if (this.timer || this.stopped) return this;
    const tick = async () => {
      const notice = await this.check().catch((err: unknown) => {
        this.reportError((err as Error).message);
        return undefined;
      });
      if (this.stopped) return;
      if (notice) {
        this.stopped = true;
        this.resolveNotice(notice);
        return;
      }
      this.timer = setTimeout(() => void tick(), this.pollMs);
      this.timer.unref();
    };
    this.timer = setTimeout(() => void tick(), 0);
    this.timer.unref();
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One poll: the notice, or undefined while there is none. Throws when the endpoint fails. */
  async check(): Promise<SpotNotice | undefined> {
    const notice = await (this.provider === 'aws' ? this.checkAws() : this.provider === 'gcp' ? this.checkGcp() : this.checkAzure());
    if (this.lastError) {
      this.onError(`spot (${this.provider}): the metadata endpoint ${this.baseUrl} answers again`);
      this.lastError = undefined;
    }
    return notice;
  }

  private reportError(message: string): void {
    const at = this.now();
    const last = this.lastError;
    if (!last || last.message !== message || at - last.at >= ERROR_LOG_INTERVAL_MS) {
      this.onError(`spot (${this.provider}): could not read the preemption notice (${message}); trying again every ${this.pollMs / 1000} s`);
      this.lastError = { message, at };
    }
  }

  private noticeOf(action: string, deadlineMs: number | undefined, detail: string): SpotNotice {
    const detectedAt = this.now();
    const deadline = deadlineMs !== undefined && Number.isFinite(deadlineMs) ? deadlineMs : detectedAt + SPOT_NOTICE_MS[this.provider];
    return { provider: this.provider, action, detectedAt: new Date(detectedAt), deadline: new Date(deadline), detail };
  }

  // ---- AWS (IMDSv2) --------------------------------------------------------------------------

  private async awsToken(): Promise<string> {
    if (this.token && this.now() < this.token.renewAt) return this.token.value;
    const url = `${this.baseUrl}/latest/api/token`;
    const res = await request(url, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(this.tokenTtlSeconds) } }, this.requestTimeoutMs);
    if (res.status !== 200) throw await unexpected(res, url, 'PUT');
    const value = (await res.text()).trim();
    if (!value) throw new Error(`PUT ${url}: empty token`);
    this.token = { value, renewAt: this.now() + this.tokenTtlSeconds * 900 };
    return value;
  }

  private async checkAws(): Promise<SpotNotice | undefined> {
    const url = `${this.baseUrl}/latest/meta-data/spot/instance-action`;
    let res = await request(url, { headers: { 'X-aws-ec2-metadata-token': await this.awsToken() } }, this.requestTimeoutMs);
    if (res.status === 401) {
      // The token expired (or the service restarted): a new one, and ask again.
      await res.body?.cancel();
      this.token = undefined;
      res = await request(url, { headers: { 'X-aws-ec2-metadata-token': await this.awsToken() } }, this.requestTimeoutMs);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (res.status !== 200) throw await unexpected(res, url);
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`GET ${url}: expected JSON {"action", "time"}, got ${JSON.stringify(text.slice(0, 200))}`);
    }
    const parsed = AwsInstanceAction.safeParse(json);
    if (!parsed.success) throw new Error(`GET ${url}: expected {"action", "time"}, got ${text.slice(0, 200)}`);
    const { action, time } = parsed.data;
    const at = Date.parse(time);
    return this.noticeOf(action, Number.isNaN(at) ? undefined : at, `AWS spot instance-action ${action} at ${Number.isNaN(at) ? `${time} (unreadable: assuming 2 minutes from now)` : new Date(at).toISOString()}`);
  }

  // ---- GCP -------------------------------------------------------------------------------------

  private async checkGcp(): Promise<SpotNotice | undefined> {
    const url = `${this.baseUrl}/computeMetadata/v1/instance/preempted`;
    const res = await request(url, { headers: { 'Metadata-Flavor': 'Google' } }, this.requestTimeoutMs);
    if (res.status !== 200) throw await unexpected(res, url);
    const text = (await res.text()).trim();
    if (text === 'FALSE') return undefined;
    if (text !== 'TRUE') throw new Error(`GET ${url}: expected TRUE or FALSE, got ${JSON.stringify(text.slice(0, 200))}`);
    const notice = this.noticeOf('preempted', undefined, '');
    notice.detail = `GCP instance preempted (seen ${notice.detectedAt.toISOString()}; stopped within 30 s)`;
    return notice;
  }

  // ---- Azure (Scheduled Events) ------------------------------------------------------------------

  private azureTimeout(): number {
    return this.azureAnswered ? this.requestTimeoutMs : Math.max(this.requestTimeoutMs, AZURE_FIRST_REQUEST_TIMEOUT_MS);
  }

  private async azureName(): Promise<string> {
    if (this.azureVmName) return this.azureVmName;
    const url = `${this.baseUrl}/metadata/instance/compute/name?api-version=2021-02-01&format=text`;
    const res = await request(url, { headers: { Metadata: 'true' } }, this.requestTimeoutMs);
    if (res.status !== 200) throw await unexpected(res, url);
    const name = (await res.text()).trim();
    if (!name) throw new Error(`GET ${url}: empty VM name`);
    this.azureVmName = name;
    return name;
  }

  private async checkAzure(): Promise<SpotNotice | undefined> {
    const vm = await this.azureName();
    const url = `${this.baseUrl}/metadata/scheduledevents?api-version=2020-07-01`;
    const res = await request(url, { headers: { Metadata: 'true' } }, this.azureTimeout());
    if (res.status !== 200) throw await unexpected(res, url);
    this.azureAnswered = true;
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Error(`GET ${url}: expected JSON {"DocumentIncarnation", "Events"}, got ${JSON.stringify(text.slice(0, 200))}`);
    }
    const parsed = AzureScheduledEvents.safeParse(json);
    if (!parsed.success) throw new Error(`GET ${url}: expected {"DocumentIncarnation", "Events": [...]}, got ${text.slice(0, 200)}`);
    const event = parsed.data.Events.find((e) => e.EventType === 'Preempt' && e.Resources.some((r) => r.toLowerCase() === vm.toLowerCase()));
    if (!event) return undefined;
    const notBefore = event.NotBefore ? Date.parse(event.NotBefore) : NaN;
    const at = Number.isNaN(notBefore) ? undefined : notBefore;
    const notice = this.noticeOf('Preempt', at, '');
    notice.detail = `Azure scheduled event ${event.EventId} Preempt of ${vm}${event.EventStatus ? ` (${event.EventStatus})` : ''}, not before ${notice.deadline.toISOString()}`;
    return notice;
  }
}

/** Seconds (one decimal) from `now` to the notice's deadline; negative once it has passed. */
export function secondsLeft(notice: Pick<SpotNotice, 'deadline'>, now = Date.now()): number {
  return Math.round((notice.deadline.getTime() - now) / 100) / 10;
}

/**
 * How long a spot GPU worker gives running recipes to checkpoint after a stop: the configured
 * grace, but no more than the provider's shortest notice leaves once the notice may have been
 * seen a poll late and the cancelled jobs have had `reserveMs` to end and report (the job runner
 * gives a cancelled recipe 10 s between SIGTERM and SIGKILL).
 */
export function spotShutdownGraceMs(configuredMs: number, provider: SpotProvider, pollMs: number, reserveMs = 13_000): number {
  return Math.max(0, Math.min(configuredMs, SPOT_NOTICE_MS[provider] - pollMs - reserveMs));
}

/** A running activity attempt, as logs name it. */
function describeAttempt(info: { activityType: string; attempt: number; workflowExecution?: { workflowId: string } }): string {
  return `${info.activityType}${info.workflowExecution ? ` of ${info.workflowExecution.workflowId}` : ''} (attempt ${info.attempt})`;
}

/**
 * What a GPU worker knows about its own preemption: the notice (once there is one) and the
 * activity attempts it is running. Its activity interceptor keeps the list and, after a notice,
 * turns the failures that preemption causes into retryable `WorkerPreempted` failures naming the
 * notice: a recipe that checkpointed and exited (`RecipePreempted`), a job refused because the
 * worker is stopping, and an attempt the SDK cancelled at the end of the shutdown grace time
 * (`WORKER_SHUTDOWN`). Every other outcome passes through unchanged: a result, a terminal
 * failure, and a cancellation the workflow asked for (an abort).
 */
export class WorkerPreemption {
  notice: SpotNotice | undefined;
  private readonly running = new Map<object, string>();

  constructor(private readonly log: (line: string) => void = (l) => console.log(l)) {}

  /** The attempts running now, as `describeAttempt` names them. */
  runningAttempts(): string[] {
    return [...this.running.values()];
  }

  readonly interceptor: ActivityInterceptorsFactory = (ctx) => ({
    inbound: {
      execute: async (input, next) => {
        const key = {};
        const what = describeAttempt(ctx.info);
        this.running.set(key, what);
        try {
          return await next(input);
        } catch (err) {
          const notice = this.notice;
          if (!notice || !causedByPreemption(err, ctx.cancellationSignal)) throw err;
          this.log(`forgeline gpu worker: ${what} failed retryably as ${ErrorType.WorkerPreempted} (${notice.detail}); the retry resumes from its last checkpoint on another worker`);
          throw ApplicationFailure.create({
            message: `${(err as Error).message}; worker preempted: ${notice.detail}`,
            type: ErrorType.WorkerPreempted,
            nonRetryable: false,
            cause: err as Error,
          });
        } finally {
          this.running.delete(key);
        }
      },
    },
  });
}

/** The failures a worker's own stop causes (see WorkerPreemption), as opposed to the stage's own faults. */
function causedByPreemption(err: unknown, signal: AbortSignal): boolean {
  if (err instanceof ApplicationFailure && err.nonRetryable) return false;
  if (signal.aborted) {
    // Only the worker's own shutdown; a cancellation the server sent (abort, timeout) stays one.
    const reason: unknown = signal.reason;
    return reason instanceof CancelledFailure && reason.message === 'WORKER_SHUTDOWN';
  }
  if (err instanceof ApplicationFailure) return err.type === 'RecipePreempted';
  return err instanceof Error && err.name === 'RecipePreemptedError';
}
