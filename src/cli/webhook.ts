/**
 * `forgeline webhook serve`: the Git push webhook receiver (src/webhooks/server.ts) until Ctrl-C.
 * Pushes start lifecycles on the configured Temporal, per the pushed repository's forgeline.yaml.
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { repoReaderFor } from '../adapters/repo-reader';
import type { ForgelineConfig } from '../config/schema';
import { startWebhookServer } from '../webhooks/server';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

function portOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port ${v}: expected a TCP port number (0..65535; 0 picks a free one)`);
  return n;
}

/** Adds `forgeline webhook serve` to the program. */
export function addWebhookCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient: WithClient): void {
  const webhook = program.command('webhook').description('Git push webhooks: pushes start lifecycles per the repository\'s forgeline.yaml');
  webhook
    .command('serve')
    .description('receive GitHub (POST /webhooks/github) and GitLab (POST /webhooks/gitlab) push events until Ctrl-C; GET /healthz answers while up')
    .option('--port <port>', 'port to listen on (default: FORGELINE_WEBHOOK_PORT, 8400)')
    .option('--host <host>', 'address to listen on (default: FORGELINE_WEBHOOK_HOST, 127.0.0.1)')
    .action(
      run(async (opts: { port?: string; host?: string }) => {
        const c = cfg();
        const port = opts.port !== undefined ? portOption(opts.port) : c.webhook.port;
        if (!c.webhook.githubSecret && !c.webhook.gitlabToken) throw new UsageError('set FORGELINE_WEBHOOK_SECRET (GitHub) or FORGELINE_WEBHOOK_GITLAB_TOKEN (GitLab): without either every delivery would be refused');
        const { reader, repos } = repoReaderFor(c);
        if (repos.length === 0) throw new UsageError('set FORGELINE_WEBHOOK_REPOS to owner/name=/path/to/checkout or owner/name=github[,...]: the receiver reads forgeline.yaml from there');
        return withClient(c, async (client) => {
          const server = await startWebhookServer({
            client,
            taskQueue: c.taskQueues.control,
            reader,
            githubSecret: c.webhook.githubSecret,
            gitlabToken: c.webhook.gitlabToken,
            bodyLimit: c.webhook.bodyLimit,
            host: opts.host ?? c.webhook.host,
            port,
            log: out.log,
          });
          out.log(`forgeline webhook receiver on ${server.url}: POST /webhooks/github${c.webhook.githubSecret ? '' : ' (refused: no FORGELINE_WEBHOOK_SECRET)'}, POST /webhooks/gitlab${c.webhook.gitlabToken ? '' : ' (refused: no FORGELINE_WEBHOOK_GITLAB_TOKEN)'}; repositories: ${repos.join(', ')}`);
          await new Promise<void>((resolve) => {
            process.once('SIGINT', () => resolve());
            process.once('SIGTERM', () => resolve());
          });
          await server.close();
          return ExitCode.Ok;
        });
      }),
    );
}
