/** Small helpers for artifact store tests: local file trees, random files, hashing. */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hex sha256 and byte count of a stream, read chunk by chunk (never held in memory whole). */
export async function digestStream(stream: AsyncIterable<Buffer>): Promise<{ sha256: string; size: number; chunks: number }> {
  const hash = createHash('sha256');
  let size = 0;
  let chunks = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
    chunks++;
  }
  return { sha256: hash.digest('hex'), size, chunks };
}

/** Writes `size` random bytes to `file` 1 MiB at a time; returns their sha256. */
export async function writeRandomFile(file: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let left = size; left > 0; ) {
      const chunk = randomBytes(Math.min(left, 1024 * 1024));
      hash.update(chunk);
      left -= chunk.length;
      yield chunk;
    }
  }
  await mkdir(path.dirname(file), { recursive: true });
  await pipeline(Readable.from(chunks()), createWriteStream(file));
  return hash.digest('hex');
}

/** Creates `files` (relative '/'-separated path -> content) under `dir`. */
export async function writeTree(dir: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, ...rel.split('/'));
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

/** The manifest digest, computed independently of the code under test. */
export function expectedDigest(files: Record<string, string | Buffer>): string {
  const lines = Object.entries(files)
    .map(([p, content]) => ({ p, line: `${p}\0${sha256(content)}\n` }))
    .sort((a, b) => Buffer.compare(Buffer.from(a.p), Buffer.from(b.p)));
  return sha256(lines.map((l) => l.line).join(''));
}
