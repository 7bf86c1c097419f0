import { parseArgs } from 'node:util';
import { loadConfig, redactConfig } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { connectClient } from '../temporal/connection';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { runStackCheck } from './check';
import { runMain } from './run-main';
import { LocalStack, type Log } from './stack';

const USAGE = `forgeline: the LLM lifecycle as Temporal durable workflows

usage: forgeline <command> [options]

commands:
  dev      start the local stack (Temporal dev server unless TEMPORAL_ADDRESS is set, search
           attributes, control worker, GPU worker for FORGELINE_GPU_POOL) until Ctrl-C
  demo     bring the stack up (reusing a running server), run the main job, print what it made
  check    run a stack check against a running stack (--pool, --timeout)
  setup    register Forgeline's search attributes on the configured namespace
  config   print the resolved configuration (secrets redacted)

Configuration comes from the environment and an optional forgeline.config.json: see README.md.`;

const log: Log = (line) => console.log(line);

async function dev(cfg: ForgelineConfig): Promise<number> {
  const stack = new LocalStack(cfg, log);
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((r) => (resolveExit = r));
  const onSignal = (sig: string) => {
    log(`\n${sig}: stopping the local stack…`);
    resolveExit(0);
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  try {
    await stack.up({
      workers: true,
      onUnexpectedExit: (name, code) => {
        log(`${name} exited unexpectedly (code ${code}); stopping the stack`);
        resolveExit(1);
      },
    });
    await Promise.race([stack.workersReady(), exit]);
    log(`forgeline dev is up: control queue ${cfg.taskQueues.control}, gpu-${cfg.gpu.pool}. Ctrl-C stops it.`);
    return await exit;
  } finally {
    await stack.down();
    log('local stack stopped');
  }
}

async function demo(cfg: ForgelineConfig): Promise<number> {
  const stack = new LocalStack(cfg, log);
  const t0 = Date.now();
  let workerDied: ((err: Error) => void) | undefined;
  const died = new Promise<never>((_, reject) => (workerDied = reject));
  died.catch(() => undefined);
  const stop = () => void stack.down().then(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await stack.up({
      workers: true,
      workerLogLevel: 'warn',
      onUnexpectedExit: (name, code) => workerDied?.(new Error(`${name} exited with code ${code}`)),
    });
    await Promise.race([stack.workersReady(), died]);
    log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)}s; running the stack check (control → gpu-${cfg.gpu.pool} → artifacts → tracker)`);
    await Promise.race([runStackCheck(stack.client, cfg, { pool: cfg.gpu.pool, note: 'forgeline demo' }, log), died]);
    log(`demo finished in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    if (stack.serverMode === 'started') log('the dev server stops with the demo; `npm run dev` keeps it up to browse the history in the Web UI');
    return 0;
  } catch (err) {
    log(`demo failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await stack.down();
  }
}

async function check(cfg: ForgelineConfig, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { pool: { type: 'string' }, timeout: { type: 'string' } } });
  const { connection, client } = await connectClient(cfg);
  try {
    await runStackCheck(client, cfg, { pool: values.pool ?? cfg.gpu.pool, ...(values.timeout ? { timeout: values.timeout } : {}) }, log);
    return 0;
  } finally {
    await connection.close();
  }
}

async function setup(cfg: ForgelineConfig): Promise<number> {
  const { connection } = await connectClient(cfg);
  try {
    const created = await ensureSearchAttributes(connection, cfg.temporal.namespace);
    log(created.length ? `created search attributes: ${created.join(', ')}` : 'search attributes already registered');
    return 0;
  } finally {
    await connection.close();
  }
}

runMain(async () => {
  const [command, ...rest] = process.argv.slice(2);
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const commands: Record<string, (cfg: ForgelineConfig) => Promise<number>> = {
    dev,
    demo,
    check: (cfg) => check(cfg, rest),
    setup,
    config: async (cfg) => {
      console.log(JSON.stringify(redactConfig(cfg), null, 2));
      return 0;
    },
  };
  const run = commands[command];
  if (!run) {
    console.error(`forgeline: unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  return run(loadConfig());
});
