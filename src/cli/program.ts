import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Client, Connection } from '@temporalio/client';
import { Command, type CommanderError } from 'commander';
import { loadConfig, redactConfig } from '../config/load';
import type { ForgelineConfig } from '../config/schema';
import { connectClient, temporalAddress } from '../temporal/connection';
import { ensureSearchAttributes } from '../temporal/search-attributes';
import { runStackCheck } from './check';
import { addAutoscaleCommands } from './autoscale';
import { addDriftCommands } from './drift';
import { CliError, describeFailure, ExitCode, UsageError } from './errors';
import { gatewayOptionsFromConfig } from '../gateway/options';
import { startGateway } from '../gateway/server';
import { demo, dev } from './local';
import { Output, type Stream } from './output';
import { addPromptCommands } from './prompt';
import { addQuotaCommands } from './quota';
import { addReembedCommands } from './reembed';
import { addReportCommand } from './report';
import { demoEmbeddings } from './demo-embeddings';
import { decide, followRelease, rollbackRelease, listModels, modelReport, parseReleaseSpec, printRegistry, printStatus, startRelease, statusReport } from './release';
import { addScheduleCommands } from './schedule';
import { addWebhookCommands } from './webhook';
import { addReleaseListCommand } from './release-list';
import { readSpecFile } from './spec-file';

const EXIT_CODES_HELP = `
Exit codes:
  0    done; for release start and release watch: the release ended a Candidate
  1    failed at run time: Temporal unreachable, the release ended Failed, an unexpected error
  2    the request was wrong and nothing happened: an option or argument, a malformed or
       invalid --spec, the configuration, an unknown release ID, or a decision the release refused
  3    the release ended without a candidate by decision: a gate failed, it was rejected, its
       approval timed out, or it was aborted
  130  interrupted while following a release (Ctrl-C); the release runs on

Configuration comes from the environment (Temporal's TEMPORAL_* variables and temporal.toml
profiles, FORGELINE_*), and an optional forgeline.config.json: see README.md.`;

const RELEASE_ID = '<id>';
const RELEASE_ID_HELP = 'release workflow ID, e.g. release/support-bot/3f2a1c9';

/** Connect, run `fn`, and always close the connection. An unreachable server is one line, exit 1. */
async function withClient<T>(cfg: ForgelineConfig, fn: (client: Client, connection: Connection) => Promise<T>): Promise<T> {
  let conn: { client: Client; connection: Connection };
  try {
    conn = await connectClient(cfg);
  } catch (err) {
    const hint = cfg.temporal.address ? 'check TEMPORAL_ADDRESS and the TLS settings' : 'is `forgeline dev` running?';
    throw new CliError(`cannot reach Temporal at ${temporalAddress(cfg)} (namespace ${cfg.temporal.namespace}): ${(err as Error).message}; ${hint}`, ExitCode.Failure, { cause: err });
  }
  try {
    return await fn(conn.client, conn.connection);
  } finally {
    await conn.connection.close();
  }
}

/**
 * While a command follows a release, Ctrl-C (or SIGTERM) ends only the following: the release
 * runs on in Temporal. Exit 130 as a shell expects; the progress display restores the terminal on exit.
 */
function stopFollowingOnSignal(out: Output, workflowId: () => string | undefined): void {
  const onSignal = () => {
    const id = workflowId();
    out.error(`\nstopped following${id ? `; the release runs on: forgeline release watch ${id}` : ''}`);
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
}

/** The full command path, e.g. `forgeline release start`, for hints. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** A usage error thrown by commander, remembering which command it came from. */
class CommandUsageError extends Error {
  constructor(readonly commanderError: CommanderError, readonly command: Command) {
    super(commanderError.message);
  }
}

/**
 * The `forgeline` command line. Each action stores its exit code in `result.code`; errors
 * propagate to runCli, which turns them into one line and an exit code.
 */
export function buildProgram(out: Output, result: { code: number }): Command {
  const cfg = () => loadConfig();
  const run =
    <A extends unknown[]>(fn: (...args: A) => Promise<number>) =>
    async (...args: A) => {
      result.code = await fn(...args);
    };

  const program = new Command('forgeline')
    .description('The LLM lifecycle as Temporal durable workflows: fine-tune, quantize, evaluate, register, approve.')
    .version(packageVersion(), '-V, --version')
    .configureOutput({
      writeOut: (s) => void out.stdout.write(s),
      writeErr: (s) => void out.stderr.write(s),
      outputError: () => undefined, // runCli prints one line with a hint instead
      getOutHelpWidth: () => out.stdout.columns ?? 100,
      getErrHelpWidth: () => out.stderr.columns ?? 100,
    })
    .showSuggestionAfterError(true)
    .addHelpText('after', EXIT_CODES_HELP);

  program
    .command('dev')
    .description('start the local stack until Ctrl-C: Temporal dev server (unless TEMPORAL_ADDRESS is set), search attributes, control worker, GPU worker for FORGELINE_GPU_POOL')
    .action(run(async () => dev(cfg(), out)));

  program
    .command('demo')
    .description('bring the local stack up (reusing a running server), run a real release of a tiny model, print what it made; `demo embeddings`: re-embed the shipped corpus into the embedded vector store, swap its alias, answer sample queries')
    .argument('[scenario]', 'release (default) or embeddings')
    .action(
      run(async (scenario: string | undefined) => {
        if (scenario === undefined || scenario === 'release') return demo(cfg(), out);
        if (scenario === 'embeddings') return demoEmbeddings(cfg(), out);
        throw new UsageError(`demo ${scenario}: unknown scenario; expected release or embeddings`);
      }),
    );

  program
    .command('gateway')
    .description('run the inference gateway (OpenAI-compatible /v1/*, admin API /admin/*, /metrics) until Ctrl-C; one replica, or many on FORGELINE_GATEWAY_REDIS_URL')
    .option('--dev', 'also accept FORGELINE_GATEWAY_DEV_KEY (default forgeline-dev) with a generous limit')
    .action(
      run(async (opts: { dev?: boolean }) => {
        const c = cfg();
        const gw = await startGateway(gatewayOptionsFromConfig(c, { dev: opts.dev === true }));
        out.log(`forgeline gateway listening on ${gw.url} (routing table version ${gw.table().version}; ${c.gateway.redisUrl ? 'shared state in Redis' : `table in ${c.gateway.stateDir}`})`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await gw.close();
        return 0;
      }),
    );

  program
    .command('check')
    .description('run a stack check against a running stack: control queue → gpu-<pool> → artifact store → tracker')
    .option('--pool <pool>', 'GPU pool to probe (default: FORGELINE_GPU_POOL)')
    .option('--timeout <duration>', 'how long the probe may take, e.g. 60s or 5m')
    .option('--json', 'print machine-readable JSON only (the result: checkId, elapsedMs, probe); progress goes to stderr')
    .action(
      run(async (opts: { pool?: string; timeout?: string; json?: boolean }) => {
        const c = cfg();
        const log = opts.json ? (line: string) => out.error(line) : out.log;
        const result = await withClient(c, (client) => runStackCheck(client, c, { pool: opts.pool ?? c.gpu.pool, ...(opts.timeout ? { timeout: opts.timeout } : {}) }, log));
        if (opts.json) out.json(result);
        return ExitCode.Ok;
      }),
    );

  program
    .command('setup')
    .description("register Forgeline's search attributes on the configured namespace")
    .option('--json', 'print machine-readable JSON only: {namespace, created}')
    .action(
      run(async (opts: { json?: boolean }) => {
        const c = cfg();
        return withClient(c, async (_client, connection) => {
          const created = await ensureSearchAttributes(connection, c.temporal.namespace);
          if (opts.json) out.json({ namespace: c.temporal.namespace, created });
          else out.log(created.length ? `created search attributes: ${created.join(', ')}` : 'search attributes already registered');
          return ExitCode.Ok;
        });
      }),
    );

  program
    .command('config')
    .description('print the resolved configuration as JSON (secrets redacted)')
    .action(
      run(async () => {
        out.json(redactConfig(cfg()));
        return ExitCode.Ok;
      }),
    );

  const release = program
    .command('release')
    .description('start, follow and decide on model releases (modelReleaseWorkflow)')
    .addHelpText('after', EXIT_CODES_HELP);

  release
    .command('start')
    .description('validate a release spec (JSON) and start the release, or join it if it already runs; follows its progress until it ends')
    .requiredOption('--spec <file>', 'release spec, JSON; schema: docs/schemas/release-spec.schema.json')
    .option('--no-wait', 'start and return at once, without following progress')
    .option('--json', 'NDJSON on stdout: {"event":"started",workflowId}, then (unless --no-wait) {"event":"progress",...} lines and one {"event":"result",outcome,exitCode,status}; other lines on stderr')
    .action(
      run(async (opts: { spec: string; wait: boolean; json?: boolean }) => {
        const c = cfg();
        const input = readSpecFile(opts.spec);
        parseReleaseSpec(input, `--spec ${opts.spec}`); // a bad spec fails before any connection
        let started: string | undefined;
        if (opts.wait) stopFollowingOnSignal(out, () => started);
        return withClient(c, async (client) => {
          const handle = await startRelease(client, c, input, opts.json ? out.error.bind(out) : out.log);
          started = handle.workflowId;
          if (opts.json) out.event('started', { workflowId: handle.workflowId });
          return opts.wait ? followRelease(handle, c, out, opts.json) : ExitCode.Ok;
        });
      }),
    );

  addReleaseListCommand(release, out, run, cfg, withClient);

  release
    .command('status')
    .description("show a release: outcome, stage, live progress of the running step, gates, decision, versions")
    .argument(RELEASE_ID, RELEASE_ID_HELP)
    .option('--json', 'print machine-readable JSON only: {workflowId, execution, status, running?}')
    .action(
      run(async (id: string, opts: { json?: boolean }) => {
        const report = await withClient(cfg(), (client) => statusReport(client.workflow.getHandle(id)));
        if (opts.json) out.json(report);
        else printStatus(report, out.log);
        return ExitCode.Ok;
      }),
    );

  release
    .command('watch')
    .description('follow a release until it ends: stage, step, loss and newest checkpoint, in place on a terminal; the exit code says how it ended')
    .argument(RELEASE_ID, RELEASE_ID_HELP)
    .option('--json', 'NDJSON on stdout: {"event":"progress",...} whenever it changes, then one {"event":"result",outcome,exitCode,status}; other lines on stderr')
    .action(
      run(async (id: string, opts: { json?: boolean }) => {
        const c = cfg();
        stopFollowingOnSignal(out, () => id);
        return withClient(c, (client) => followRelease(client.workflow.getHandle(id), c, out, opts.json));
      }),
    );

  const decisions = {
    approve: 'approve a release that awaits approval; it then becomes the candidate',
    reject: 'reject a release that awaits approval',
    abort: 'abort a running release: its running step is cancelled',
    pause: 'hold a running canary at its current weights (its bake clock stops)',
    resume: 'resume a paused canary: the current step bakes again, then is analyzed',
    'promote-now': 'skip the remaining canary steps: all traffic to the candidate, production moves to it',
    rollback: 'roll back: traffic, adapters and registry aliases return to what served before (a running release, or a promoted one that has ended)',
  } as const;
  for (const [kind, description] of Object.entries(decisions) as Array<[keyof typeof decisions, string]>) {
    release
      .command(kind)
      .description(`${description} (an Update, recorded in its history with who, why and from where); prints the state the release returns`)
      .argument(RELEASE_ID, RELEASE_ID_HELP)
      .requiredOption('--by <who>', 'who decides, e.g. alice@example.com (goes into the audit trail)')
      .requiredOption('--reason <why>', 'why (goes into the audit trail)')
      .option('--json', 'print machine-readable JSON only: {workflowId, status}')
      .action(
        run(async (id: string, opts: { by: string; reason: string; json?: boolean }) => {
          const c = cfg();
          const decision = { by: opts.by, reason: opts.reason };
          if (kind === 'rollback') return withClient(c, (client) => rollbackRelease(client, c, id, decision, out, opts.json));
          return withClient(c, (client) => decide(client.workflow.getHandle(id), kind, decision, out, opts.json));
        }),
      );
  }

  const registry = program.command('registry').description('the model registry: registered models, their versions (lineage, artifacts) and aliases');
  registry
    .command('list')
    .description('list registered models')
    .option('--json', 'print machine-readable JSON only: {models}')
    .action(
      run(async (opts: { json?: boolean }) => {
        const models = await listModels(cfg());
        if (opts.json) out.json({ models });
        else out.log(models.length ? models.join('\n') : 'registry is empty');
        return ExitCode.Ok;
      }),
    );
  registry
    .command('show')
    .description("show a model's versions (lineage, artifacts) and where its aliases point")
    .argument('<model>', 'model name, e.g. support-bot')
    .option('--json', 'print machine-readable JSON only: {model, versions, aliases}')
    .action(
      run(async (model: string, opts: { json?: boolean }) => {
        const c = cfg();
        if (opts.json) out.json(await modelReport(c, model));
        else await printRegistry(c, model, out.log);
        return ExitCode.Ok;
      }),
    );

  addDriftCommands(program, out, run);
  addScheduleCommands(program, out, run, cfg, withClient);
  addReembedCommands(program, out, run, cfg, withClient);
  addWebhookCommands(program, out, run, cfg, withClient);
  addPromptCommands(program, out, run, cfg, withClient);
  addReportCommand(program, out, run, cfg, withClient);
  addAutoscaleCommands(program, out, run, cfg, withClient);
  addQuotaCommands(program, out, run, cfg, withClient);

  // Every command reports its usage errors to runCli, which knows which command to point at.
  const override = (cmd: Command) => {
    cmd.exitOverride((err) => {
      throw new CommandUsageError(err, cmd);
    });
    cmd.commands.forEach(override);
  };
  override(program);
  return program;
}

/** `error: unknown option '--x'\n(Did you mean --by?)` → `unknown option '--x' (Did you mean --by?)`. */
function oneLine(message: string): string {
  return message.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim();
}

/** Run the CLI on `argv` (without node and the script); returns the exit code. */
export async function runCli(argv: string[], io: { stdout: Stream; stderr: Stream } = { stdout: process.stdout, stderr: process.stderr }): Promise<number> {
  const out = new Output(io.stdout, io.stderr);
  const result = { code: ExitCode.Ok as number };
  try {
    await buildProgram(out, result).parseAsync(argv, { from: 'user' });
    return result.code;
  } catch (err) {
    if (err instanceof CommandUsageError) {
      const { code, exitCode } = err.commanderError;
      if (code === 'commander.helpDisplayed' || code === 'commander.version') return ExitCode.Ok;
      if (code === 'commander.help') return exitCode === 0 ? ExitCode.Ok : ExitCode.Usage; // help shown for a missing command
      out.error(`forgeline: ${oneLine(err.message)} (see: ${commandPath(err.command)} --help)`);
      return ExitCode.Usage;
    }
    const failure = describeFailure(err);
    out.error(`forgeline: ${failure.message}`);
    if (failure.stack) out.error(failure.stack);
    return failure.exitCode;
  }
}
