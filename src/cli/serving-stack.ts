/**
 * The serving half of the local stack (`forgeline dev`, `forgeline demo`): our inference gateway and
 * a vLLM server on CPU behind it.
 *
 * - Gateway: started in this process on FORGELINE_GATEWAY_PORT (so it dies with the stack), with
 *   the dev key FORGELINE_GATEWAY_DEV_KEY. Its admin token is FORGELINE_GATEWAY_ADMIN_TOKEN, or one
 *   generated once and kept in `<FORGELINE_GATEWAY_STATE_DIR>/admin-token` (mode 0600), so a second
 *   stack on the same home, and the persisted routing table, keep working with it. A gateway that
 *   already listens on the port and accepts that token is reused (as a running Temporal server is).
 * - vLLM: FORGELINE_VLLM_URLS when the user set it (started by nobody here); else, when the gateway
 *   is reused, the vLLM its table already names; else one started here (startVllm) serving the tiny
 *   base model as `tiny-llama-base` with runtime LoRA. Its URL is known before it is up, so workers
 *   start at once; the control worker's serving calls retry until it answers.
 * - The gateway gets the upstream `vllm` (its URLs) and, if absent, the route `tiny-demo` → the base
 *   model (weight 100). The control worker gets FORGELINE_GATEWAY_URL, FORGELINE_GATEWAY_ADMIN_TOKEN
 *   and FORGELINE_VLLM_URLS.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { GatewayTrafficRouter, RouteConflictError } from '../adapters/gateway-router';
import { VllmServingBackend } from '../adapters/vllm-backend';
import { startVllm, type VllmServer } from '../adapters/vllm-process';
import type { ForgelineConfig } from '../config/schema';
import { baseLabel } from '../contracts/release-lifecycle';
import type { RouteTargets, RoutingTable } from '../contracts/routing';
import { gatewayOptionsFromConfig } from '../gateway/options';
import { startGateway, type RunningGateway } from '../gateway/server';
import { ConfigError } from '../ports/errors';
import { isListening } from '../temporal/dev-server';
import { DEMO_LORA_RANK } from './release';
import type { Log } from './stack';

/** The public model alias the dev stack routes (the demo's release model). */
export const DEV_ALIAS = 'tiny-demo';
/** The name the dev stack's vLLM serves the tiny base model under (release specs' serving.baseModel). */
export const DEV_BASE_MODEL = 'tiny-llama-base';
/** The upstream the dev stack registers (release specs' serving.upstream default). */
export const VLLM_UPSTREAM = 'vllm';
/** vLLM `--chat-template` (single-line form) for the tiny model: the messages' contents, one per line. */
export const TINY_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% if not loop.last %}\n{% endif %}{% endfor %}";
/** Adapters one batch may mix: stable + candidate + one spare (vLLM --max-loras). */
const MAX_LORAS = 3;
const BY = 'forgeline dev stack';

export type VllmMode = 'started' | 'user' | 'reused';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** FORGELINE_GATEWAY_ADMIN_TOKEN, or the one generated for this state directory (created on first use). */
export function devAdminToken(cfg: ForgelineConfig): { token: string; source: string } {
  if (cfg.gateway.adminToken) return { token: cfg.gateway.adminToken, source: 'FORGELINE_GATEWAY_ADMIN_TOKEN' };
  const file = path.join(cfg.gateway.stateDir, 'admin-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token) return { token, source: file };
  }
  mkdirSync(cfg.gateway.stateDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'w' });
  chmodSync(file, 0o600);
  return { token, source: `${file} (generated)` };
}

export class ServingStack {
  private gateway?: RunningGateway;
  private vllm?: VllmServer;
  private vllmLog?: WriteStream;
  private stopping = false;
  private readyPromise: Promise<void> = Promise.resolve();
  private watch?: NodeJS.Timeout;
  gatewayUrl!: string;
  adminToken!: string;
  router!: GatewayTrafficRouter;
  vllmUrls: string[] = [];
  vllmMode: VllmMode = 'started';
  gatewayMode: 'started' | 'reused' = 'started';

  constructor(
    private readonly cfg: ForgelineConfig,
    private readonly log: Log,
  ) {}

  get devKey(): string {
    return this.cfg.gateway.devKey;
  }

  /**
   * Start (or reuse) the gateway, decide where vLLM lives, register the upstream and the initial
   * route. vLLM itself starts with `startVllm` once the base model exists.
   */
  async up(): Promise<void> {
    const { cfg, log } = this;
    const g = cfg.gateway;
    const { token, source } = devAdminToken(cfg);
    this.adminToken = token;
    const host = g.host === '0.0.0.0' || g.host === '::' ? '127.0.0.1' : g.host;
    this.gatewayUrl = g.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${g.port}`;
    this.router = new GatewayTrafficRouter({ url: this.gatewayUrl, adminToken: token, timeoutMs: 10_000 });

    let table: RoutingTable;
    if (await isListening(g.port, host)) {
      try {
        table = await this.router.getTable();
      } catch (err) {
        throw new ConfigError(
          `port ${g.port} is in use, and not by a Forgeline gateway that accepts the admin token from ${source} (${(err as Error).message.split('\n', 1)[0]}): stop what listens there or set FORGELINE_GATEWAY_PORT`,
        );
      }
      this.gatewayMode = 'reused';
      log(`gateway already listening on ${this.gatewayUrl}: reusing it`);
    } else {
      this.gateway = await startGateway(gatewayOptionsFromConfig({ ...cfg, gateway: { ...g, adminToken: token } }, { dev: true }));
      this.gatewayUrl = g.url ?? this.gateway.url;
      table = this.gateway.table();
      log(`gateway listening on ${this.gateway.url} (routing table version ${table.version} in ${g.redisUrl ? 'Redis' : g.stateDir}; admin token from ${source})`);
    }

    if (cfg.serving.vllmUrls) {
      this.vllmMode = 'user';
      this.vllmUrls = cfg.serving.vllmUrls;
      log(`vLLM: using FORGELINE_VLLM_URLS (${this.vllmUrls.join(', ')}); starting none`);
    } else if (this.gatewayMode === 'reused' && table.upstreams[VLLM_UPSTREAM]) {
      this.vllmMode = 'reused';
      this.vllmUrls = table.upstreams[VLLM_UPSTREAM].urls;
      log(`vLLM: the running gateway's upstream ${VLLM_UPSTREAM} (${this.vllmUrls.join(', ')}): reusing it`);
    } else {
      this.vllmMode = 'started';
      this.vllmUrls = [`http://127.0.0.1:${await freePort()}`];
    }
    if (this.vllmMode !== 'reused') await this.registerUpstream();
    await this.ensureRoute();
  }

  /** What the control worker needs to deploy, shift traffic and read metrics. */
  workerEnv(): Record<string, string> {
    return { FORGELINE_GATEWAY_URL: this.gatewayUrl, FORGELINE_GATEWAY_ADMIN_TOKEN: this.adminToken, FORGELINE_VLLM_URLS: this.vllmUrls.join(',') };
  }

  /** The upstream `vllm` → our URLs (a table from an earlier run names that run's vLLM port). */
  private async registerUpstream(): Promise<void> {
    for (;;) {
      const table = await this.router.getTable();
      const now = table.upstreams[VLLM_UPSTREAM]?.urls;
      if (now && now.join(',') === this.vllmUrls.join(',')) return;
      try {
        await this.router.setUpstream(VLLM_UPSTREAM, this.vllmUrls, { expectedVersion: table.version, by: BY, reason: now ? `vLLM moved from ${now.join(', ')}` : 'the dev stack\'s vLLM' });
        return;
      } catch (err) {
        if (!(err instanceof RouteConflictError)) throw err;
      }
    }
  }

  /** The base model's route: `<alias>` → `<alias>@base` on vLLM, weight 100. */
  baseTargets(alias = DEV_ALIAS): RouteTargets {
    return [{ version: baseLabel(alias), upstream: VLLM_UPSTREAM, model: DEV_BASE_MODEL, weight: 100 }];
  }

  /** Route the alias to the base model, if it has no route yet (`force`: whatever it has now). */
  async ensureRoute(opts: { force?: boolean; reason?: string } = {}): Promise<void> {
    for (;;) {
      const table = await this.router.getTable();
      const current = table.routes[DEV_ALIAS];
      if (current && !opts.force) return;
      const targets = this.baseTargets();
      if (current && JSON.stringify(current.targets) === JSON.stringify(targets)) return;
      try {
        await this.router.setRoute(DEV_ALIAS, targets, { expectedVersion: table.version, by: BY, reason: opts.reason ?? 'initial route: the base model' });
        return;
      } catch (err) {
        if (!(err instanceof RouteConflictError)) throw err;
      }
    }
  }

  /**
   * Start vLLM on the base model (when this stack owns it), in the background; `ready()` resolves
   * once it answers. `onExit` is called if it dies while the stack runs. With `restoreRoutes`, the
   * adapters the routing table names are loaded again from FORGELINE_SERVING_DIR (a restarted
   * vLLM has none).
   */
  startVllm(baseModelDir: Promise<string>, opts: { onExit?: (name: string, code: number | null) => void; restoreRoutes?: boolean } = {}): void {
    const { cfg, log } = this;
    if (this.vllmMode !== 'started') {
      this.readyPromise = this.vllmMode === 'user' ? this.checkUserVllm() : Promise.resolve();
      return;
    }
    const port = Number(new URL(this.vllmUrls[0]!).port);
    this.readyPromise = (async () => {
      const model = await baseModelDir;
      if (this.stopping) return;
      mkdirSync(path.join(cfg.home, 'logs'), { recursive: true });
      const logFile = path.join(cfg.home, 'logs', 'vllm.log');
      this.vllmLog = createWriteStream(logFile, { flags: 'a' });
      log(`starting vLLM on CPU at ${this.vllmUrls[0]} (${DEV_BASE_MODEL}, --max-loras ${MAX_LORAS} --max-lora-rank ${DEMO_LORA_RANK}; 20-60 s; log ${logFile})`);
      const t0 = Date.now();
      this.vllm = await startVllm({
        model,
        servedModelName: DEV_BASE_MODEL,
        port,
        dtype: 'float32', // the tiny model's own dtype; `auto` picks bfloat16 on CPU, 7x slower here
        maxLoras: MAX_LORAS,
        maxLoraRank: DEMO_LORA_RANK,
        // The tiny model has no chat template; this one passes the messages' text through, so
        // /v1/chat/completions works (prompt evaluation generates through it).
        extraArgs: ['--chat-template', TINY_CHAT_TEMPLATE],
        log: (l) => this.vllmLog?.write(`${l}\n`),
      });
      if (this.stopping) {
        // The stack went down while vLLM was starting.
        await this.vllm.stop();
        return;
      }
      const pid = this.vllm.pid;
      this.watch = setInterval(() => {
        try {
          process.kill(pid, 0);
        } catch {
          clearInterval(this.watch);
          if (!this.stopping) opts.onExit?.('vLLM server', null);
        }
      }, 1000);
      this.watch.unref();
      log(`vLLM up in ${((Date.now() - t0) / 1000).toFixed(1)}s at ${this.vllm.url}, serving ${DEV_BASE_MODEL}`);
      if (opts.restoreRoutes) await this.restoreRoutedAdapters().catch((err: Error) => log(`warning: could not reload the routed adapters: ${err.message}`));
    })();
    this.readyPromise.catch(() => undefined);
  }

  /** Resolves when vLLM answers (at once for a user's or a reused one). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  private async checkUserVllm(): Promise<void> {
    for (const url of this.vllmUrls) {
      const ok = await fetch(`${url.replace(/\/+$/, '')}/health`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false);
      if (!ok) this.log(`warning: vLLM at ${url} does not answer /health yet; releases with serving retry until it does`);
    }
  }

  /** Load the adapters that routes name (from an earlier run) on our fresh vLLM, where their files remain. */
  private async restoreRoutedAdapters(): Promise<void> {
    const table = await this.router.getTable();
    const backend = new VllmServingBackend({ urls: this.vllmUrls });
    for (const [alias, route] of Object.entries(table.routes)) {
      for (const t of route.targets) {
        if (t.upstream !== VLLM_UPSTREAM || t.model === DEV_BASE_MODEL) continue;
        const dir = path.join(this.cfg.serving.dir, t.model);
        if (existsSync(path.join(dir, '.forgeline-complete'))) {
          await backend.loadAdapter({ name: t.model, path: dir, base: DEV_BASE_MODEL });
          this.log(`reloaded adapter ${t.model} (route ${alias}, weight ${t.weight}) from ${dir}`);
        } else {
          this.log(`warning: route ${alias} sends weight ${t.weight} to ${t.model}, which this vLLM does not serve and whose files are gone; requests to it fail until a release or a rollback changes the route`);
        }
      }
    }
  }

  /** How to call the gateway: its URL, the dev key, a curl line and the OpenAI client. */
  printUsage(): void {
    const { log } = this;
    const url = this.gatewayUrl;
    log(`gateway   ${url}/v1  (OpenAI-compatible; model "${DEV_ALIAS}", API key "${this.devKey}")`);
    log(`  curl -s ${url}/v1/completions -H 'Authorization: Bearer ${this.devKey}' -H 'Content-Type: application/json' \\`);
    log(`    -d '{"model": "${DEV_ALIAS}", "prompt": "reverse : a b c =", "max_tokens": 8, "temperature": 0}'`);
    log(`  python: OpenAI(base_url="${url}/v1", api_key="${this.devKey}").completions.create(model="${DEV_ALIAS}", prompt="reverse : a b c =", max_tokens=8, temperature=0)`);
    log(`  routes: curl -s ${url}/admin/routes -H "Authorization: Bearer $(cat ${path.join(this.cfg.gateway.stateDir, 'admin-token')})"${this.cfg.gateway.adminToken ? ' (or FORGELINE_GATEWAY_ADMIN_TOKEN)' : ''}`);
  }

  /** Stop what `up()` and `startVllm()` started (vLLM, then the gateway). */
  async down(): Promise<void> {
    this.stopping = true;
    if (this.watch) clearInterval(this.watch);
    // A vLLM still starting is stopped as soon as it is up (and by its exit hook if this process ends first).
    await this.vllm?.stop();
    this.vllm = undefined;
    this.vllmLog?.end();
    await this.gateway?.close();
    this.gateway = undefined;
  }
}
