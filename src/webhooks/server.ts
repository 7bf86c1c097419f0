/**
 * The Git push webhook receiver (`forgeline webhook serve`):
 *
 *   POST /webhooks/github   X-Hub-Signature-256: HMAC-SHA256 of the raw body with FORGELINE_WEBHOOK_SECRET
 *   POST /webhooks/gitlab   X-Gitlab-Token: FORGELINE_WEBHOOK_GITLAB_TOKEN (compared in constant time)
 *   GET  /healthz
 *
 * A push is read, the pushed repository's forgeline.yaml at the pushed SHA maps its branch and
 * changed paths to lifecycles, and each one triggered is started on the control queue with the
 * workflow ID `<lifecycle name>/<repo>/<sha>`: a redelivered or repeated push joins the one already
 * started (202 with `duplicate: true`) instead of starting another.
 *
 * Answers: 401 missing or bad signature/token; 400 malformed payload; 413 body over the limit
 * (refused from Content-Length, or while streaming, never buffering it); 422 a forgeline.yaml
 * or spec file with errors (nothing started); 200 `{ignored}` for what we do not act on (ping, other
 * events, tags, branch deletions, unconfigured repositories, no forgeline.yaml, nothing matched);
 * 202 `{workflows}` once started; 503 when Temporal refused a start (redelivery is safe).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { verify } from '@octokit/webhooks-methods';
import type { PushEvent, WebhookEventName } from '@octokit/webhooks-types';
import { WorkflowIdConflictPolicy, WorkflowIdReusePolicy, type Client } from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { parseReembedSpec } from '../cli/reembed';
import { parseReleaseSpec } from '../cli/release';
import { ForgelineGitSha, ForgelineLifecycle, ForgelineModel, Lifecycle } from '../contracts/search-attributes';
import { ConfigError } from '../ports/errors';
import type { RepoReader } from '../ports/repo-reader';
import { FORGELINE_YAML, ForgelineYamlError, parseForgelineYaml, parseYamlText, triggered, WEBHOOK_LIFECYCLES, type LifecycleEntry, type WebhookLifecycle } from './forgeline-yaml';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

export interface WebhookServerOptions {
  client: Client;
  /** The control task queue every lifecycle starts on. */
  taskQueue: string;
  reader: RepoReader;
  /** GitHub's webhook secret; unset: /webhooks/github answers 401. */
  githubSecret?: string;
  /** GitLab's secret token; unset: /webhooks/gitlab answers 401. */
  gitlabToken?: string;
  /** Largest body accepted, bytes (default 1 MiB). */
  bodyLimit?: number;
  log?: (line: string) => void;
}

/** What a push is, whichever forge sent it. */
export interface Push {
  source: 'github' | 'gitlab';
  delivery: string;
  repo: string;
  /** refs/heads/<branch>; undefined for a tag. */
  branch?: string;
  sha: string;
  deleted: boolean;
  /** Paths added, modified or removed by the push's commits, each once. */
  changed: string[];
}

export interface StartedLifecycle {
  name: string;
  kind: WebhookLifecycle;
  workflowType: string;
  workflowId: string;
  duplicate: boolean;
  paths: string[];
}

class Reply {
  /** What the delivery was, for the log line (not sent). */
  context?: string;
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {}
}
const ignored = (reason: string) => new Reply(200, { ignored: true, reason });
const unauthorized = (error: string) => new Reply(401, { error });
const malformed = (error: string) => new Reply(400, { error });

const sha40 = z.string().regex(/^[0-9a-f]{40}$/, 'expected a 40-hex commit SHA');
const paths = z.array(z.string()).default([]);
const commits = z.array(z.object({ added: paths, modified: paths, removed: paths }), { error: 'expected a list of commits' });

/** The parts of GitHub's PushEvent we read. */
type GitHubPush = Pick<PushEvent, 'ref' | 'after' | 'deleted'> & {
  repository: Pick<PushEvent['repository'], 'full_name'>;
  commits: Array<Pick<PushEvent['commits'][number], 'added' | 'modified' | 'removed'>>;
};
const GitHubPushSchema = z.object({
  ref: z.string({ error: 'expected ref, e.g. refs/heads/main' }),
  after: sha40,
  deleted: z.boolean({ error: 'expected deleted: true or false' }),
  repository: z.object({ full_name: z.string().min(1, 'expected owner/name') }, { error: 'expected repository {full_name}' }),
  commits,
});
/** GitLab's Push Hook, the parts we read. */
const GitLabPushSchema = z.object({
  object_kind: z.literal('push', { error: 'expected object_kind: push' }),
  ref: z.string({ error: 'expected ref, e.g. refs/heads/main' }),
  after: sha40,
  checkout_sha: sha40.nullable().optional(),
  project: z.object({ path_with_namespace: z.string().min(1, 'expected group/project') }, { error: 'expected project {path_with_namespace}' }),
  commits,
});

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function parseJson<T>(raw: Buffer, schema: z.ZodType<T>, what: string): T | Reply {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    return malformed(`${what} is not JSON (${(err as Error).message}); configure the webhook with content type application/json`);
  }
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  return malformed(`${what} is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ')}`);
}

function branchOf(ref: string): string | undefined {
  return ref.startsWith('refs/heads/') ? ref.slice('refs/heads/'.length) : undefined;
}

function changedPaths(list: Array<{ added: string[]; modified: string[]; removed: string[] }>): string[] {
  return [...new Set(list.flatMap((c) => [...c.added, ...c.modified, ...c.removed]))];
}

function fromGitHub(p: GitHubPush, delivery: string): Push {
  return { source: 'github', delivery, repo: p.repository.full_name, branch: branchOf(p.ref), sha: p.after, deleted: p.deleted, changed: changedPaths(p.commits) };
}

/** Equal-length digests, so neither the length nor the content of the token leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The workflow ID of one lifecycle of one pushed commit: `<name>/<repo>/<sha>`, Temporal-safe. */
export function webhookWorkflowId(name: string, repo: string, sha: string): string {
  return `${name}/${repo.replace(/[^A-Za-z0-9._/-]+/g, '-')}/${sha}`;
}

interface Planned {
  entry: LifecycleEntry;
  name: string;
  paths: string[];
  input: unknown;
  searchAttributes: SearchAttributePair[];
}

export class WebhookReceiver {
  private readonly log: (line: string) => void;
  constructor(private readonly opts: WebhookServerOptions) {
    this.log = opts.log ?? ((line) => console.log(line));
  }

  async github(req: FastifyRequest): Promise<Reply> {
    const delivery = header(req, 'x-github-delivery') ?? '(no X-GitHub-Delivery)';
    const raw = req.body as Buffer | undefined;
    if (!this.opts.githubSecret) return unauthorized('FORGELINE_WEBHOOK_SECRET is not set: this receiver accepts no GitHub deliveries');
    const signature = req.headers['x-hub-signature-256'];
    if (signature === undefined) return unauthorized('missing X-Hub-Signature-256: set the webhook secret on GitHub to FORGELINE_WEBHOOK_SECRET');
    if (Array.isArray(signature) || signature.includes(',')) return unauthorized('more than one X-Hub-Signature-256 header');
    if (!/^sha256=[0-9a-f]{64}$/.test(signature)) return unauthorized('X-Hub-Signature-256 is not sha256=<64 hex>');
    if (!raw || raw.length === 0) return malformed('empty body');
    if (!(await verify(this.opts.githubSecret, raw.toString('utf8'), signature))) return unauthorized('X-Hub-Signature-256 does not match the body: is the webhook secret FORGELINE_WEBHOOK_SECRET?');
    const event = header(req, 'x-github-event') as WebhookEventName | undefined;
    if (!event) return malformed('missing X-GitHub-Event');
    if (event !== 'push') return ignored(`${event} events start nothing`);
    const payload = parseJson(raw, GitHubPushSchema, 'push payload');
    if (payload instanceof Reply) return payload;
    return this.push(fromGitHub(payload, delivery));
  }

  async gitlab(req: FastifyRequest): Promise<Reply> {
    const delivery = header(req, 'x-gitlab-event-uuid') ?? '(no X-Gitlab-Event-UUID)';
    const raw = req.body as Buffer | undefined;
    if (!this.opts.gitlabToken) return unauthorized('FORGELINE_WEBHOOK_GITLAB_TOKEN is not set: this receiver accepts no GitLab deliveries');
    const token = req.headers['x-gitlab-token'];
    if (token === undefined) return unauthorized('missing X-Gitlab-Token: set the webhook secret token on GitLab to FORGELINE_WEBHOOK_GITLAB_TOKEN');
    if (Array.isArray(token) || !sameSecret(token, this.opts.gitlabToken)) return unauthorized('X-Gitlab-Token does not match FORGELINE_WEBHOOK_GITLAB_TOKEN');
    const event = header(req, 'x-gitlab-event');
    if (!event) return malformed('missing X-Gitlab-Event');
    if (event !== 'Push Hook') return ignored(`${event} events start nothing`);
    if (!raw || raw.length === 0) return malformed('empty body');
    const p = parseJson(raw, GitLabPushSchema, 'push payload');
    if (p instanceof Reply) return p;
    const deleted = p.checkout_sha === null || /^0+$/.test(p.after);
    return this.push({ source: 'gitlab', delivery, repo: p.project.path_with_namespace, branch: branchOf(p.ref), sha: p.after, deleted, changed: changedPaths(p.commits) });
  }

  /** Read forgeline.yaml at the pushed commit, plan every triggered lifecycle, then start them. */
  async push(push: Push): Promise<Reply> {
    const at = `${push.repo}@${push.sha.slice(0, 12)}`;
    const answer = (r: Reply) => {
      r.context = `push ${at}${push.branch ? ` on ${push.branch}` : ''}`;
      return r;
    };
    if (push.deleted) return answer(ignored('branch deleted'));
    if (push.branch === undefined) return answer(ignored('not a branch push (tag)'));
    if (!this.opts.reader.knows(push.repo)) return answer(ignored(`repository ${push.repo} is not configured (FORGELINE_WEBHOOK_REPOS)`));
    let planned: Planned[];
    try {
      const text = await this.opts.reader.readFile(push.repo, push.sha, FORGELINE_YAML);
      if (text === undefined) return answer(ignored(`no ${FORGELINE_YAML} at ${at}`));
      const hits = triggered(parseForgelineYaml(text), push.branch, push.changed);
      if (hits.length === 0) return answer(ignored(`no lifecycle in ${FORGELINE_YAML} matches branch ${push.branch} and the ${push.changed.length} changed path(s)`));
      planned = [];
      for (const hit of hits) planned.push({ ...hit, ...(await this.plan(hit.entry, push, hit.paths)) });
    } catch (err) {
      if (err instanceof ForgelineYamlError || err instanceof ConfigError) return answer(new Reply(422, { error: err.message, started: [] }));
      throw err;
    }
    const workflows: StartedLifecycle[] = [];
    for (const p of planned) workflows.push(await this.start(p, push));
    return answer(new Reply(202, { accepted: true, delivery: push.delivery, repository: push.repo, sha: push.sha, duplicate: workflows.every((w) => w.duplicate), workflows }));
  }

  private async readSpec(push: Push, file: string): Promise<unknown> {
    const text = await this.opts.reader.readFile(push.repo, push.sha, file);
    if (text === undefined) throw new ForgelineYamlError(FORGELINE_YAML, [`spec ${file} does not exist at ${push.sha}: commit it, or fix the spec path`]);
    return parseYamlText(text, file).value;
  }

  private async plan(entry: LifecycleEntry, push: Push, paths: string[]): Promise<Pick<Planned, 'input' | 'searchAttributes'>> {
    switch (entry.kind) {
      case 'model-release': {
        const raw = (await this.readSpec(push, entry.spec!)) as Record<string, unknown>;
        const input = { ...raw, git: { repo: push.repo, ref: `refs/heads/${push.branch}`, sha: push.sha } };
        const spec = parseReleaseSpec(input, entry.spec);
        return {
          input,
          searchAttributes: [
            { key: ForgelineLifecycle, value: Lifecycle.Release },
            { key: ForgelineModel, value: spec.model },
            { key: ForgelineGitSha, value: push.sha },
          ],
        };
      }
      case 'reembed': {
        const input = await this.readSpec(push, entry.spec!);
        const spec = parseReembedSpec(input, entry.spec);
        return { input, searchAttributes: [{ key: ForgelineLifecycle, value: Lifecycle.Reembed }, { key: ForgelineModel, value: spec.embedding.model }] };
      }
      case 'prompt-release':
        // promptReleaseWorkflow takes what changed: its resolve activity reads and validates each
        // changed prompts/<name>/ folder at the commit, then releases each prompt as a child workflow.
        return {
          input: { repo: push.repo, ref: `refs/heads/${push.branch}`, sha: push.sha, paths },
          searchAttributes: [
            { key: ForgelineLifecycle, value: Lifecycle.PromptRelease },
            { key: ForgelineGitSha, value: push.sha },
          ],
        };
    }
  }

  private async start(p: Planned, push: Push): Promise<StartedLifecycle> {
    const workflowType = WEBHOOK_LIFECYCLES[p.entry.kind];
    const workflowId = webhookWorkflowId(p.name, push.repo, push.sha);
    const result = { name: p.name, kind: p.entry.kind, workflowType, workflowId, paths: p.paths };
    try {
      await this.opts.client.workflow.start(workflowType, {
        taskQueue: this.opts.taskQueue,
        workflowId,
        args: [p.input],
        // A push starts one lifecycle: a redelivery while it runs, or after it succeeded, joins it;
        // only one that failed, was terminated or cancelled may start again.
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
        typedSearchAttributes: p.searchAttributes,
        memo: { webhook: { source: push.source, delivery: push.delivery, repo: push.repo, branch: push.branch, sha: push.sha, paths: p.paths } },
        staticSummary: `${p.entry.kind} ${p.name} of ${push.repo}@${push.sha.slice(0, 12)} (push on ${push.branch}, ${push.source} delivery ${push.delivery})`,
      });
      return { ...result, duplicate: false };
    } catch (err) {
      if ((err as Error).name === 'WorkflowExecutionAlreadyStartedError') return { ...result, duplicate: true };
      throw err;
    }
  }
}

export interface WebhookServer {
  app: FastifyInstance;
  url: string;
  close(): Promise<void>;
}

/** Build the receiver's fastify app (not listening). */
export function buildWebhookApp(opts: WebhookServerOptions): FastifyInstance {
  const receiver = new WebhookReceiver(opts);
  const log = opts.log ?? ((line: string) => console.log(line));
  const app = Fastify({ bodyLimit: opts.bodyLimit ?? DEFAULT_BODY_LIMIT, logger: false });
  // Keep every body as the raw bytes: the signature covers them exactly as sent.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode ?? 500;
    const message = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `body over the limit of ${opts.bodyLimit ?? DEFAULT_BODY_LIMIT} bytes (FORGELINE_WEBHOOK_BODY_LIMIT)` : err.message;
    // 413: refused before the body is buffered; Node reads and discards the rest of it, so the
    // client gets this answer instead of a connection reset in the middle of its upload.
    const code = status >= 500 && !err.statusCode ? 503 : status;
    log(`webhook delivery ${header(req, 'x-github-delivery') ?? header(req, 'x-gitlab-event-uuid') ?? '(no delivery id)'} ${req.url}: ${code} ${status >= 500 ? (err.stack ?? err.message) : message}`);
    void reply.code(code).send({ error: message });
  });
  const handle = (fn: (req: FastifyRequest) => Promise<Reply>) => async (req: FastifyRequest, reply: FastifyReply) => {
    const r = await fn(req);
    // Every delivery is logged with its ID, what it was and how it was answered.
    const delivery = header(req, 'x-github-delivery') ?? header(req, 'x-gitlab-event-uuid') ?? '(no delivery id)';
    const event = header(req, 'x-github-event') ?? header(req, 'x-gitlab-event') ?? '(no event)';
    log(`webhook delivery ${delivery} ${req.url} ${event}${r.context ? ` (${r.context})` : ''}: ${r.status} ${JSON.stringify(r.body)}`);
    return reply.code(r.status).send(r.body);
  };
  app.post('/webhooks/github', handle((req) => receiver.github(req)));
  app.post('/webhooks/gitlab', handle((req) => receiver.gitlab(req)));
  app.get('/healthz', async () => ({ ok: true }));
  return app;
}

/** Start the receiver on host:port (port 0: a free one). */
export async function startWebhookServer(opts: WebhookServerOptions & { host?: string; port?: number }): Promise<WebhookServer> {
  const app = buildWebhookApp(opts);
  await app.listen({ host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host === '0.0.0.0' || !opts.host ? '127.0.0.1' : opts.host;
  return { app, url: `http://${host}:${port}`, close: () => app.close() };
}
