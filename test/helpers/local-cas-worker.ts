/**
 * A second (third...) process on the same local store, for the cross-process tests of
 * compareAndSwap in test/integration/artifact-store.test.ts. Run as
 *
 *   node --require tsx/cjs test/helpers/local-cas-worker.ts increment <root-uri> <key> <n>
 *     adds 1 to the decimal counter at <key> n times (read with etag, swap, retry when refused),
 *     then prints {"refusals": <count>}
 *   node --require tsx/cjs test/helpers/local-cas-worker.ts hold-lock <root-uri> <key>
 *     takes <key>'s compare-and-swap lock, prints "held", and waits (to be killed)
 *   node --require tsx/cjs test/helpers/local-cas-worker.ts promote <root-uri> <move-json>
 *     moves model `demo`'s production alias (ModelRegistry.moveAlias with the given AliasMove),
 *     then prints {"won": true} or {"won": false, "type": <error type>, "message": <message>}
 *
 * It waits for a line on stdin before starting, so that the parent can release all workers at
 * once, and exits when stdin closes.
 */
import readline from 'node:readline';
import { DEFAULT_LOCK_OPTIONS, withFileLock } from '../../src/adapters/file-lock';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';
import { ForgelineError } from '../../src/ports/errors';
import { type AliasMove, ModelRegistry } from '../../src/registry/model-registry';

async function main(): Promise<void> {
  const [mode, rootUri, key, count] = process.argv.slice(2);
  if (!mode || !rootUri || !key) throw new Error('usage: local-cas-worker.ts increment|hold-lock|promote <root-uri> <key|move-json> [n]');
  const store = new LocalArtifactStore(rootUri);
  const lines = readline.createInterface({ input: process.stdin });
  const go = new Promise<void>((resolve) => lines.once('line', () => resolve()));
  lines.once('close', () => process.exit(0));
  process.stdout.write('ready\n');
  await go;

  if (mode === 'increment') {
    let refusals = 0;
    for (let done = 0; done < Number(count); ) {
      const current = await store.getWithEtag(key);
      if (!current) throw new Error(`${key} is missing`);
      const result = await store.compareAndSwap(key, String(Number(current.body.toString()) + 1), current.etag);
      if (result.written) done++;
      else refusals++;
    }
    process.stdout.write(`${JSON.stringify({ refusals })}\n`);
    process.exit(0);
  }
  if (mode === 'hold-lock') {
    await withFileLock(store.lockPathOf(key), DEFAULT_LOCK_OPTIONS, async () => {
      process.stdout.write('held\n');
      await new Promise(() => undefined); // until killed
    });
  }
  if (mode === 'promote') {
    try {
      await new ModelRegistry(store).moveAlias('demo', 'production', JSON.parse(key) as AliasMove);
      process.stdout.write(`${JSON.stringify({ won: true })}\n`);
    } catch (err) {
      if (!(err instanceof ForgelineError)) throw err;
      process.stdout.write(`${JSON.stringify({ won: false, type: err.type, message: err.message })}\n`);
    }
    process.exit(0);
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
