import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { withFileLock } from '../adapters/file-lock';
import type { RoutingTable } from '../contracts/routing';
import { ConfigError } from '../ports/errors';
import { checkTable, InvalidChangeError } from './routing';

export type CasResult = { ok: true } | { ok: false; current: RoutingTable | undefined };

/**
 * Where the routing table is kept. Every write is a compare-and-swap on the table's version, so
 * of two writers exactly one wins and the other sees the winner's table.
 */
export interface RoutingStore {
  readonly kind: string;
  /** The stored table; undefined before the first write. Throws ConfigError when it is malformed. */
  load(): Promise<RoutingTable | undefined>;
  /** Store `next` if the stored version is still `expected` (-1: nothing stored yet). */
  compareAndSet(expected: number, next: RoutingTable): Promise<CasResult>;
  /** Calls `onChange` when another writer (another replica or process) may have changed the table. */
  watch(onChange: () => void): Promise<void>;
  close(): Promise<void>;
}

function parseStored(text: string, where: string): RoutingTable {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`the gateway's routing table in ${where} is not JSON (${(err as Error).message}); restore it from a backup or remove it to start empty`);
  }
  try {
    return checkTable(data, where);
  } catch (err) {
    if (err instanceof InvalidChangeError) throw new ConfigError(`the gateway's routing table is malformed: ${err.message}; fix it or remove it to start empty`);
    throw err;
  }
}

/**
 * One JSON file (`routes.json`), replaced atomically (write a temporary file, fsync, rename,
 * fsync the directory), changed under a lock file shared by every process on the host
 * (src/adapters/file-lock.ts). Processes sharing the directory notice each other's changes by the
 * file's modification, checked every few seconds (`watch`).
 */
export class FileRoutingStore implements RoutingStore {
  readonly kind = 'file';
  readonly file: string;
  private readonly lockFile: string;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly dir: string,
    private readonly pollMs = 2000,
  ) {
    this.file = path.join(dir, 'routes.json');
    this.lockFile = path.join(dir, '.routes.lock');
  }

  async load(): Promise<RoutingTable | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return parseStored(text, this.file);
  }

  async compareAndSet(expected: number, next: RoutingTable): Promise<CasResult> {
    await mkdir(this.dir, { recursive: true });
    return withFileLock(this.lockFile, { leaseMs: 10_000, timeoutMs: 30_000 }, async (stillHeld) => {
      const current = await this.load();
      if ((current?.version ?? -1) !== expected) return { ok: false, current };
      const tmp = path.join(this.dir, `.routes.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify(next, null, 2) + '\n');
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        if (!(await stillHeld())) throw new Error(`lost the lock ${this.lockFile} (stalled past its lease); the table was not written`);
        await rename(tmp, this.file);
      } catch (err) {
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      const d = await open(this.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
      return { ok: true };
    });
  }

  async watch(onChange: () => void): Promise<void> {
    let last = await this.signature();
    this.timer = setInterval(() => {
      void this.signature().then((sig) => {
        if (sig !== last) {
          last = sig;
          onChange();
        }
      });
    }, this.pollMs);
    this.timer.unref();
  }

  private async signature(): Promise<string> {
    try {
      const s = await stat(this.file);
      return `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return 'absent';
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }
}

const CAS_SCRIPT = `
local v = redis.call('HGET', KEYS[1], 'version')
if (v or '-1') ~= ARGV[1] then return {0, redis.call('HGET', KEYS[1], 'table') or ''} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'table', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return {1, ''}
`;

type CasRedis = Redis & { forgelineRoutesCas(key: string, channel: string, expected: string, version: string, table: string): Promise<[number, string]> };

/**
 * The table in one Redis hash (`version`, `table`), swapped by a Lua script that checks the
 * version and writes in one step, then publishes the new version so every replica reloads at once
 * (and each also re-reads every few seconds, in case it missed a notice).
 */
export class RedisRoutingStore implements RoutingStore {
  readonly kind = 'redis';
  private readonly key: string;
  private readonly channel: string;
  private sub: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly pollMs = 2000,
  ) {
    this.key = `${prefix}routes`;
    this.channel = `${prefix}routes:changed`;
    if (!('forgelineRoutesCas' in redis)) redis.defineCommand('forgelineRoutesCas', { numberOfKeys: 2, lua: CAS_SCRIPT });
  }

  async load(): Promise<RoutingTable | undefined> {
    const text = await this.redis.hget(this.key, 'table');
    return text ? parseStored(text, `Redis key ${this.key}`) : undefined;
  }

  async compareAndSet(expected: number, next: RoutingTable): Promise<CasResult> {
    const [ok, current] = await (this.redis as CasRedis).forgelineRoutesCas(this.key, this.channel, String(expected), String(next.version), JSON.stringify(next));
    if (ok === 1) return { ok: true };
    return { ok: false, current: current ? parseStored(current, `Redis key ${this.key}`) : undefined };
  }

  async watch(onChange: () => void): Promise<void> {
    this.sub = this.redis.duplicate();
    this.sub.on('message', () => onChange());
    this.sub.on('error', () => undefined); // reconnects by itself; the poll below covers the gap
    await this.sub.subscribe(this.channel);
    let last = await this.redis.hget(this.key, 'version');
    this.timer = setInterval(() => {
      this.redis.hget(this.key, 'version').then(
        (v) => {
          if (v !== last) {
            last = v;
            onChange();
          }
        },
        () => undefined,
      );
    }, this.pollMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (this.sub) this.sub.disconnect();
  }
}
