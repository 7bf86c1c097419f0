import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Client, Connection } from '@temporalio/client';
import { loadConfig, redactConfig } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { connectClient } from '../temporal/connection';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { ConfigError } from '../ports/errors';
import { ModelRegistry } from '../registry/model-registry';
import { runStackCheck } from './check';
import { artifactStoreFor, decide, prepareDemoRelease, printRegistry, runRelease, startRelease } from './release';
import { runMain } from './run-main';
import { LocalStack, type Log } from './stack';

const USAGE = `forgeline: the LLM lifecycle as Temporal durable workflows

usage: forgeline <command> [options]

commands:
  dev      start the local stack (Temporal dev server unless TEMPORAL_ADDRESS is set, search
           attributes, control worker, GPU worker for FORGELINE_GPU_POOL) until Ctrl-C
  demo     bring the stack up (reusing a running server), run the main job, print what it made
  check    run a stack check against a running stack (--pool, --timeout)
  release start --spec FILE [--no-wait]
           validate a release spec (JSON) and start it; follows progress until it ends
  release status|approve|reject|abort ID [--by WHO --reason WHY]
           show a release, or decide on it (decisions are Updates, recorded in its history)
  registry [MODEL]
           list registered models, or a model's versions and aliases
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
    log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)}s; preflight stack check (control → gpu-${cfg.gpu.pool} → artifacts → tracker)`);
    await Promise.race([runStackCheck(stack.client, cfg, { pool: cfg.gpu.pool, note: 'forgeline demo' }, log), died]);
    log('\npreparing the demo release: tiny Llama base model + tiny-instruct dataset');
    const spec = await Promise.race([prepareDemoRelease(cfg, log), died]);
    const code = await Promise.race([runRelease(stack.client, cfg, spec, log), died]);
    log(`demo finished in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    if (stack.serverMode === 'started') log('the dev server stops with the demo; `npm run dev` keeps it up to browse the history in the Web UI');
    return code;
  } catch (err) {
    log(`demo failed: ${(err as Error).message}`);
    return 1;
  } finally {
    await stack.down();
  }
}

async function check(cfg: ForgelineConfig, argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { pool: { type: 'string' }, timeout: { type: 'string' } } });
  return withClient(cfg, async (client) => {
    await runStackCheck(client, cfg, { pool: values.pool ?? cfg.gpu.pool, ...(values.timeout ? { timeout: values.timeout } : {}) }, log);
    return 0;
  });
}

/** Connect, run `fn`, and always close the connection. */
async function withClient(cfg: ForgelineConfig, fn: (client: Client, connection: Connection) => Promise<number>): Promise<number> {
  const { connection, client } = await connectClient(cfg);
  try {
    return await fn(client, connection);
  } finally {
    await connection.close();
  }
}

async function release(cfg: ForgelineConfig, argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { spec: { type: 'string' }, by: { type: 'string' }, reason: { type: 'string' }, 'no-wait': { type: 'boolean' } },
  });
  const [sub, id] = positionals;
  return withClient(cfg, async (client) => {
    if (sub === 'start') {
      if (!values.spec) throw new ConfigError('release start needs --spec FILE (a JSON release spec; see docs/schemas/release-spec.schema.json)');
      const input = JSON.parse(readFileSync(values.spec, 'utf8')) as unknown;
      if (values['no-wait']) return (await startRelease(client, cfg, input, log), 0);
      return runRelease(client, cfg, input, log);
    }
    if (!id) throw new ConfigError(`release ${sub ?? ''} needs a release workflow ID, e.g. release/my-model/3f2a1c9`);
    if (sub === 'status') {
      console.log(JSON.stringify(await client.workflow.getHandle(id).query('status'), null, 2));
      return 0;
    }
    if (sub === 'approve' || sub === 'reject' || sub === 'abort') {
      if (!values.by || !values.reason) throw new ConfigError(`release ${sub} needs --by WHO and --reason WHY: both go into the audit trail`);
      return decide(client, id, sub, { by: values.by, reason: values.reason }, log);
    }
    throw new ConfigError(`unknown release command '${sub ?? ''}': use start, status, approve, reject or abort`);
  });
}

async function registry(cfg: ForgelineConfig, argv: string[]): Promise<number> {
  const [model] = argv;
  if (model) {
    await printRegistry(cfg, model, log);
  } else {
    const models = await new ModelRegistry(artifactStoreFor(cfg)).listModels();
    log(models.length ? models.join('\n') : 'registry is empty');
  }
  return 0;
}

async function setup(cfg: ForgelineConfig): Promise<number> {
  return withClient(cfg, async (_client, connection) => {
    const created = await ensureSearchAttributes(connection, cfg.temporal.namespace);
    log(created.length ? `created search attributes: ${created.join(', ')}` : 'search attributes already registered');
    return 0;
  });
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
    release: (cfg) => release(cfg, rest),
    registry: (cfg) => registry(cfg, rest),
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
