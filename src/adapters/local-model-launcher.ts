/**
 * ModelLauncher on this host: one vLLM process (startVllm) per launched model.
 *
 *   const launcher = new LocalModelLauncher({ stateDir: '/var/forgeline/serving/launches' });
 *   const m = await launcher.launch({ id: 'tiny-demo-3f2a1c9d8e7b-quantized', modelDir, servedModelName: m.id });
 *   // m.url === 'http://127.0.0.1:<port>'
 *   await launcher.stop(m.id);
 *
 * - State: `<stateDir>/<id>.json` records pid (the server's process group), port, URL, model and
 *   start time; `<id>.log` holds the server's output. A launch holds `<id>.lock` (a file lock all
 *   processes on the host honour), so two workers never start the same id twice.
 * - Idempotent: a launch whose record names a live group that answers /health and serves the
 *   model adopts it (`adopted: true`; the record is written as soon as the process exists, so a
 *   server still starting is waited for); a record of a dead server is removed and the model started
 *   afresh; a live group that never became healthy within the start timeout is stopped first.
 *   A pid is trusted only while its command line still names the record's port and model, so a
 *   reused pid is never adopted (nor stopped).
 * - Lifetime: the servers do not die with the worker that launched them (a control worker restart
 *   keeps the canary's candidate serving; the restarted worker adopts it). They die with `owner`
 *   when one is given (the dev stack's process: `forgeline dev` leaves nothing behind), else run
 *   until stopped (`stop`, `stopAll`, or the release's rollback / promotion).
 */
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { ErrorType } from '../contracts/errors';
import { ConfigError, ForgelineError } from '../ports/errors';
import type { LaunchedModel, LaunchRequest, ModelLauncher } from '../ports/model-launcher';
import { withFileLock } from './file-lock';
import { processGroupAlive } from './local-job-runner';
import { fileTail, startVllm, stopProcessGroup, type StartVllmOptions } from './vllm-process';

export const LAUNCH_ID = /^[a-z0-9][a-z0-9._-]{0,127}$/;

const RecordSchema = z.object({
  id: z.string(),
  pid: z.number().int().positive(),
  port: z.number().int().positive(),
  url: z.string(),
  servedModelName: z.string(),
  modelDir: z.string(),
  startedAt: z.string(),
  host: z.string(),
});
type LaunchRecord = z.infer<typeof RecordSchema>;

export interface LocalModelLauncherOptions {
  /** Where the records, locks and server logs live (e.g. `<FORGELINE_SERVING_DIR>/launches`). */
  stateDir: string;
  /** Servers die with this process (e.g. the dev stack's pid); default: they run until stopped. */
  ownerPid?: number;
  /**
   * Server settings (startVllm): e.g. `{ dtype: 'bfloat16', maxModelLen: 2048 }` on CPU (the int4
   * kernel takes bf16 activations), or GPU flags in `extraArgs`. LoRA is off: a launched model
   * serves itself only.
   */
  vllm?: Pick<StartVllmOptions, 'python' | 'host' | 'dtype' | 'maxModelLen' | 'kvCacheGiB' | 'ompThreadsBind' | 'extraArgs' | 'env' | 'startTimeoutMs' | 'killGraceMs'>;
}

const DEFAULT_START_TIMEOUT_MS = 300_000;

/** Where a control worker keeps its launch records: `<serving dir>/launches`. */
export function launchStateDir(servingDir: string): string {
  return path.join(servingDir, 'launches');
}

export class LocalModelLauncher implements ModelLauncher {
  readonly label: string;
  private readonly inflight = new Map<string, Promise<LaunchedModel>>();

  constructor(private readonly opts: LocalModelLauncherOptions) {
    if (!opts.stateDir) throw new ConfigError('LocalModelLauncher: stateDir is empty (set FORGELINE_SERVING_DIR)');
    this.label = `local vLLM launcher (${opts.stateDir})`;
  }

  private file(id: string, ext: 'json' | 'log' | 'lock'): string {
    return path.join(this.opts.stateDir, `${id}.${ext}`);
  }

  private startTimeoutMs(): number {
    return this.opts.vllm?.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  }

  /** Every attempt of one id in this process shares one launch; other processes wait on the lock file. */
  launch(req: LaunchRequest): Promise<LaunchedModel> {
    if (!LAUNCH_ID.test(req.id)) return Promise.reject(new ConfigError(`launch id '${req.id}': expected lowercase letters, digits, '.', '_' and '-' (at most 128)`));
    const running = this.inflight.get(req.id);
    if (running) return running;
    const p = this.launchLocked(req).finally(() => this.inflight.delete(req.id));
    this.inflight.set(req.id, p);
    return p;
  }

  private async launchLocked(req: LaunchRequest): Promise<LaunchedModel> {
    const start = this.startTimeoutMs();
    // The lease outlasts a whole start; a launcher that dies mid-start frees the id after it.
    return withFileLock(this.file(req.id, 'lock'), { leaseMs: start + 60_000, timeoutMs: 30_000 }, async () => {
      const rec = this.read(req.id);
      if (rec) {
        if (rec.modelDir !== path.resolve(req.modelDir) || rec.servedModelName !== req.servedModelName) {
          throw new ForgelineError(
            ErrorType.InvalidSpec,
            `launch id '${req.id}' already runs ${rec.servedModelName} from ${rec.modelDir} (pid ${rec.pid}), not ${req.servedModelName} from ${req.modelDir}: an id names one model; stop it first or use another id`,
            true,
          );
        }
        const adopted = await this.adopt(rec, req);
        if (adopted) return adopted;
      }
      return this.start(req);
    });
  }

  /** The record's server if it is (or becomes, within its start timeout) healthy; else stops what is left and forgets it. */
  private async adopt(rec: LaunchRecord, req: LaunchRequest): Promise<LaunchedModel | undefined> {
    if (ownsGroup(rec)) {
      const deadline = Date.parse(rec.startedAt) + this.startTimeoutMs();
      for (;;) {
        if (await serves(rec)) return this.launched(rec, true);
        if (!ownsGroup(rec) || Date.now() > deadline) break;
        req.onProgress?.(`waiting for ${rec.servedModelName} (pid ${rec.pid}, started ${rec.startedAt}) to answer /health`);
        await sleep(1000);
      }
      if (ownsGroup(rec)) await stopProcessGroup(rec.pid, this.opts.vllm?.killGraceMs);
    }
    await this.forget(rec);
    return undefined;
  }

  private async start(req: LaunchRequest): Promise<LaunchedModel> {
    const modelDir = path.resolve(req.modelDir);
    const logFile = this.file(req.id, 'log');
    await mkdir(this.opts.stateDir, { recursive: true });
    await rm(logFile, { force: true });
    const t0 = Date.now();
    let rec: LaunchRecord | undefined;
    req.onProgress?.(`starting vLLM for ${req.servedModelName} from ${modelDir}`);
    await startVllm({
      ...this.opts.vllm,
      model: modelDir,
      servedModelName: req.servedModelName,
      lora: false,
      exitWith: this.opts.ownerPid ? { pid: this.opts.ownerPid } : 'none',
      logFile,
      // Recorded before it is healthy: a launcher that dies mid-start leaves a record that the
      // next launch adopts (waiting for /health within the start timeout) instead of a stray server.
      onSpawn: (s) => {
        rec = { id: req.id, pid: s.pid, port: s.port, url: s.url, servedModelName: req.servedModelName, modelDir, startedAt: new Date(t0).toISOString(), host: os.hostname() };
        const tmp = `${this.file(req.id, 'json')}.tmp-${process.pid}`;
        writeFileSync(tmp, JSON.stringify(rec, null, 2) + '\n');
        renameSync(tmp, this.file(req.id, 'json'));
      },
      onWait: async () => {
        req.onProgress?.(`starting vLLM for ${req.servedModelName}: ${Math.round((Date.now() - t0) / 1000)} s`);
        await sleep(500);
      },
    }).catch(async (err: unknown) => {
      await rm(this.file(req.id, 'json'), { force: true }); // it never became healthy and is stopped
      throw err;
    });
    return this.launched(rec!, false);
  }

  async stop(id: string): Promise<void> {
    if (!LAUNCH_ID.test(id)) throw new ConfigError(`launch id '${id}': expected lowercase letters, digits, '.', '_' and '-' (at most 128)`);
    await this.inflight.get(id)?.catch(() => undefined);
    await withFileLock(this.file(id, 'lock'), { leaseMs: this.startTimeoutMs() + 60_000, timeoutMs: 30_000 }, async () => {
      const rec = this.read(id);
      if (rec && ownsGroup(rec)) await stopProcessGroup(rec.pid, this.opts.vllm?.killGraceMs);
      if (rec) await this.forget(rec);
    });
  }

  async list(): Promise<LaunchedModel[]> {
    const out: LaunchedModel[] = [];
    for (const id of this.ids()) {
      const rec = this.read(id);
      if (!rec) continue;
      if (ownsGroup(rec)) out.push(this.launched(rec, true));
      else await this.forget(rec);
    }
    return out;
  }

  /** Stop every server this state directory records (the dev stack's shutdown). */
  async stopAll(): Promise<void> {
    for (const id of this.ids()) await this.stop(id);
  }

  /** The last lines a launched server printed (for errors and logs). */
  outputTail(id: string): string {
    return fileTail(this.file(id, 'log'));
  }

  /**
   * Drop the record of a server that is not (or no longer) ours to adopt. If its leader died but
   * processes of its group live on (an engine left behind), they are stopped: Linux does not reuse
   * a pid while a process group of that id exists, so that group can only be the server's.
   */
  private async forget(rec: LaunchRecord): Promise<void> {
    if (rec.host === os.hostname() && !existsSync(`/proc/${rec.pid}`) && processGroupAlive(rec.pid)) await stopProcessGroup(rec.pid, this.opts.vllm?.killGraceMs);
    await rm(this.file(rec.id, 'json'), { force: true });
  }

  private ids(): string[] {
    try {
      return readdirSync(this.opts.stateDir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => f.slice(0, -'.json'.length))
        .filter((id) => LAUNCH_ID.test(id));
    } catch {
      return [];
    }
  }

  private read(id: string): LaunchRecord | undefined {
    let text: string;
    try {
      text = readFileSync(this.file(id, 'json'), 'utf8');
    } catch {
      return undefined;
    }
    const parsed = RecordSchema.safeParse(safeJson(text));
    return parsed.success && parsed.data.id === id ? parsed.data : undefined;
  }

  private launched(rec: LaunchRecord, adopted: boolean): LaunchedModel {
    return { id: rec.id, url: rec.url, servedModelName: rec.servedModelName, modelDir: rec.modelDir, startedAt: rec.startedAt, adopted, where: `pid ${rec.pid} on ${rec.host}` };
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * The record's process group is alive on this host and its leader is still our server (its
 * command line names the record's port and model), so a pid reused by another program is left alone.
 */
function ownsGroup(rec: LaunchRecord): boolean {
  if (rec.host !== os.hostname() || !processGroupAlive(rec.pid)) return false;
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${rec.pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return false;
  }
  const after = (flag: string) => argv[argv.indexOf(flag) + 1];
  return argv.includes('--port') && after('--port') === String(rec.port) && after('--served-model-name') === rec.servedModelName;
}

/** The server answers /health and lists the model. */
async function serves(rec: LaunchRecord): Promise<boolean> {
  try {
    const health = await fetch(`${rec.url}/health`, { signal: AbortSignal.timeout(2000) });
    if (!health.ok) return false;
    const models = (await (await fetch(`${rec.url}/v1/models`, { signal: AbortSignal.timeout(5000) })).json()) as { data?: Array<{ id: string }> };
    return !!models.data?.some((m) => m.id === rec.servedModelName);
  } catch {
    return false;
  }
}
