/**
 * A lock file shared by every process on a host (or on a shared filesystem), for the local
 * store's compare-and-swap: `open(path, 'wx')` (O_CREAT | O_EXCL) creates it only if absent, so
 * exactly one process holds it.
 *
 * Crash safety: a holder that dies (kill -9, power loss) cannot remove its lock, so a lock older
 * than its lease is taken to be abandoned and is broken. The lease must be much longer than any
 * critical section: ours read one small file and rename another, a few milliseconds. Breaking is
 * a rename to a unique name, then a check that what was renamed is the very lock judged stale
 * (same inode and mtime); if a fresh lock was taken by mistake, it is put back. Before writing, a
 * holder checks that the lock is still its own (`stillHeld`), so a holder whose lock was broken
 * because it stalled past its lease writes nothing.
 *
 * What remains: a holder that stalls past its lease exactly between `stillHeld()` and its write
 * can race the process that broke its lock. With a lease of seconds around a millisecond critical
 * section, that takes a process stopped for longer than the lease at that point.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink, link } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FileLockOptions {
  /** A lock older than this (by its mtime) is abandoned and may be broken. */
  leaseMs: number;
  /** Give up waiting for a live holder after this long (a retryable error). */
  timeoutMs: number;
}

export const DEFAULT_LOCK_OPTIONS: FileLockOptions = { leaseMs: 10_000, timeoutMs: 30_000 };

/** What a lock file holds: who took it, so a timeout can name the holder. */
interface LockOwner {
  token: string;
  pid: number;
  host: string;
  acquiredAt: string;
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as NodeJS.ErrnoException).code : undefined;
}

async function readOwner(lockPath: string): Promise<Partial<LockOwner> | undefined> {
  try {
    return JSON.parse(await readFile(lockPath, 'utf8')) as Partial<LockOwner>;
  } catch {
    return undefined; // gone, or a holder still writing it (or one that crashed doing so)
  }
}

/**
 * Runs `fn` while holding the lock at `lockPath`, then releases it. `fn` gets `stillHeld()`, to
 * call right before its write. Throws a plain (retryable) Error naming the holder when the lock
 * stays held by a live holder for `timeoutMs`.
 */
export async function withFileLock<T>(
  lockPath: string,
  options: FileLockOptions,
  fn: (stillHeld: () => Promise<boolean>) => Promise<T>,
): Promise<T> {
  const token = await acquire(lockPath, options);
  const stillHeld = async (): Promise<boolean> => (await readOwner(lockPath))?.token === token;
  try {
    return await fn(stillHeld);
  } finally {
    // Remove the lock only while it is ours: if it was broken, it may be someone else's now.
    if (await stillHeld()) await unlink(lockPath).catch(() => undefined);
  }
}

async function acquire(lockPath: string, options: FileLockOptions): Promise<string> {
  const owner: LockOwner = { token: randomBytes(12).toString('hex'), pid: process.pid, host: os.hostname(), acquiredAt: '' };
  const deadline = Date.now() + options.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    await mkdir(path.dirname(lockPath), { recursive: true });
    try {
      const handle = await open(lockPath, 'wx');
      try {
        await handle.writeFile(JSON.stringify({ ...owner, acquiredAt: new Date().toISOString() }));
      } finally {
        await handle.close();
      }
      return owner.token;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }

    const held = await stat(lockPath).catch(() => undefined);
    if (!held) continue; // released meanwhile: try again at once
    if (Date.now() - held.mtimeMs > options.leaseMs) {
      await breakStaleLock(lockPath, held.ino, held.mtimeMs);
      continue;
    }
    if (Date.now() > deadline) {
      const holder = await readOwner(lockPath);
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for the lock ${lockPath}, held by ` +
          `${holder ? `pid ${holder.pid} on ${holder.host} since ${holder.acquiredAt}` : 'an unknown process'}; ` +
          `it is taken over once older than ${options.leaseMs} ms`,
      );
    }
    // Short, jittered waits: a holder keeps the lock for milliseconds.
    await sleep(Math.min(50, 2 + attempt * 2) * (0.5 + Math.random()));
  }
}

/** Removes the lock judged stale (inode `ino`, mtime `mtimeMs`), and nothing else. */
async function breakStaleLock(lockPath: string, ino: number, mtimeMs: number): Promise<void> {
  const tomb = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, tomb);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return; // someone else broke or released it
    throw err;
  }
  const moved = await stat(tomb);
  if (moved.ino !== ino || moved.mtimeMs !== mtimeMs) {
    // Another process broke the stale lock first and took a fresh one, which we just moved:
    // put it back, unless yet another lock appeared meanwhile (its holder's stillHeld() fails).
    await link(tomb, lockPath).catch((err: unknown) => {
      if (errnoCode(err) !== 'EEXIST') throw err;
    });
  }
  await unlink(tomb);
}
