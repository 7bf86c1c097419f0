/**
 * A parent process for the vLLM supervision test: starts a vLLM server with startVllm, prints
 * `{"pid": <server pid>, "url": ...}` once it is healthy, then waits to be killed (kill -9 runs no exit
 * hook, so only the server's own parent watch can end it).
 *   node --require tsx/cjs test/helpers/vllm-parent.ts <model dir>
 */
import { startVllm } from '../../src/adapters/vllm-process';

async function main(): Promise<void> {
  const server = await startVllm({ model: process.argv[2]!, lora: false, maxModelLen: 128 });
  console.log(JSON.stringify({ pid: server.pid, url: server.url }));
  setInterval(() => undefined, 1 << 30);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
