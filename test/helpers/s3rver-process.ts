/**
 * Runs s3rver (a fake S3 server) in a process of its own; test/helpers/s3-server.ts spawns it as
 *
 *   node --openssl-legacy-provider --require tsx/cjs test/helpers/s3rver-process.ts <data-dir>
 *
 * Why a process of its own, with that flag: s3rver makes ListObjectsV2 continuation tokens by
 * encrypting the last key with single DES (`crypto.createCipheriv('des', ...)`). OpenSSL 3, which
 * Node 17+ uses, moved DES to its "legacy" provider, so without the flag any listing that needs a
 * second page fails with `error:0308010C:digital envelope routines::unsupported` (surfacing as an
 * S3 InternalError). The provider can only be enabled when a process starts, and only the test
 * server needs it, so the server gets its own process rather than the whole test run getting the
 * flag. (s3rver's md5 ETags are unaffected: md5 is still in OpenSSL 3's default provider.)
 *
 * Protocol: prints one JSON line `{"port": <n>}` on stdout once it listens on 127.0.0.1.
 * It exits on SIGTERM/SIGINT and when stdin closes, i.e. when the parent goes away, however it
 * dies, so no orphan server outlives a test run.
 */

interface S3rverOptions {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
}
interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
// s3rver ships no type declarations; this is the little of its API we use.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (options: S3rverOptions) => S3rverInstance;

async function main(): Promise<void> {
  const directory = process.argv[2];
  if (!directory) throw new Error('usage: s3rver-process.ts <data-dir>');

  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
  const { port } = await server.run();

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    // Do not wait for keep-alive connections to drain: the parent is done with us.
    const forceExit = setTimeout(() => process.exit(0), 2000);
    forceExit.unref();
    server.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();

  process.stdout.write(`${JSON.stringify({ port })}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
