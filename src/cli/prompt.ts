import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApplicationFailure, WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { parsePromptSpec, PROMPT_ALIASES, type PromptAlias } from '../contracts/prompt';
import {
  PromptReleaseOutcome,
  promptOutcomeOfFailure,
  promptReleaseWorkflowId,
  type PromptReleasePushResult,
  type PromptReleaseRequestInput,
  type PromptReleaseResult,
  type PromptReleaseStatus,
} from '../contracts/prompt-release';
import { renderPromptReleaseDetails } from '../contracts/prompt-release-details';
import { ForgelineLifecycle, ForgelineModel, Lifecycle } from '../contracts/search-attributes';
import type { ArtifactStore } from '../ports/artifact-store';
import { readPromptReleaseFiles } from '../prompts/release-files';
import { promptDigest, PromptRegistry, type PromptAliasRecord, type PromptVersionRecord } from '../registry/prompt-registry';
import { CliError, ExitCode, UsageError } from './errors';
import type { Output } from './output';
import { artifactStoreFor } from './release';
import { startOrFollow } from './stack';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;
type WithClient = <T>(cfg: ForgelineConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

async function aliasesOf(registry: PromptRegistry, name: string): Promise<Partial<Record<PromptAlias, PromptAliasRecord>>> {
  const out: Partial<Record<PromptAlias, PromptAliasRecord>> = {};
  for (const alias of PROMPT_ALIASES) {
    const a = await registry.getAlias(name, alias);
    if (a) out[alias] = a;
  }
  return out;
}

/** `forgeline prompt list [name]`: the prompts with their aliases, or one prompt's versions. Read-only. */
export async function promptList(store: ArtifactStore, name: string | undefined, out: Output, json?: boolean): Promise<number> {
  const registry = new PromptRegistry(store);
  if (!name) {
    const prompts = [];
    for (const n of await registry.listPrompts()) {
      const aliases = await aliasesOf(registry, n);
      prompts.push({ name: n, aliases: Object.fromEntries(Object.entries(aliases).map(([k, v]) => [k, v.version])) });
    }
    if (json) out.json({ prompts });
    else if (!prompts.length) out.log('no prompts published');
    else for (const p of prompts) out.log(`${p.name}${Object.entries(p.aliases).map(([a, v]) => `  ${a}@${v}`).join('')}`);
    return ExitCode.Ok;
  }
  const versions = await registry.listVersions(name);
  if (!versions.length) throw new UsageError(`prompt '${name}' has no published versions: see forgeline prompt list`);
  const aliases = await aliasesOf(registry, name);
  if (json) {
    out.json({ name, versions: versions.map(({ version, ref, digest, createdAt, prompt, source }) => ({ version, ref, digest, createdAt, model: prompt.model, ...(source ? { source } : {}) })), aliases });
    return ExitCode.Ok;
  }
  for (const v of versions) {
    const on = Object.entries(aliases)
      .filter(([, a]) => a.version === v.version)
      .map(([alias]) => alias);
    out.log(`${v.version}  ${v.createdAt}  model ${v.prompt.model.alias}${on.length ? `  [${on.join(', ')}]` : ''}`);
  }
  return ExitCode.Ok;
}

function describeVersion(v: PromptVersionRecord): string[] {
  const p = v.prompt;
  const params = Object.entries(p.model.params).map(([k, val]) => `${k}=${JSON.stringify(val)}`);
  return [
    `${v.ref}  (sha256 ${v.digest}, published ${v.createdAt})`,
    ...(p.description ? [`description: ${p.description}`] : []),
    `model: ${p.model.alias}${params.length ? ` (${params.join(', ')})` : ''}`,
    `variables: ${Object.entries(p.variables).map(([n, d]) => `${n}: ${d.type}${d.required ? '' : '?'}`).join(', ') || 'none'}`,
    `examples: ${p.examples.length}`,
    'template:',
    ...p.template.split('\n').map((l) => `  ${l}`),
  ];
}

/** `forgeline prompt show <name>[@version|@alias]` (default: production). Read-only. */
export async function promptShow(store: ArtifactStore, ref: string, out: Output, json?: boolean): Promise<number> {
  const m = /^([^@]+)(?:@(.+))?$/.exec(ref);
  if (!m) throw new UsageError(`'${ref}': expected <name>, <name>@<version> or <name>@<alias> (${PROMPT_ALIASES.join(', ')})`);
  const record = await new PromptRegistry(store).resolve(m[1]!, m[2] ?? 'production');
  if (json) out.json(record);
  else for (const line of describeVersion(record)) out.log(line);
  return ExitCode.Ok;
}

/** The work tree a release file belongs to: the nearest directory above it with `.git`, else the current directory. */
function repoRootOf(file: string): string {
  for (let dir = path.dirname(path.resolve(file)); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, '.git'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

/**
 * A release file read as the webhook reads one at a commit, from the local work tree: paths in it
 * (`source.file`, `evaluation.testSet`) are relative to the repository root; the prompt and the
 * test set are inlined. Every problem is a UsageError line naming file, field and line.
 */
export async function readLocalPromptRelease(file: string): Promise<{ request: PromptReleaseRequestInput; version: string }> {
  if (!existsSync(file)) throw new UsageError(`${file}: file not found`);
  const root = repoRootOf(file);
  const relative = path.relative(root, path.resolve(file)).split(path.sep).join('/');
  const problems: string[] = [];
  const request = await readPromptReleaseFiles(
    relative,
    {
      at: root,
      read: (f) => readFile(path.join(root, f), 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err))),
    },
    problems,
  );
  if (!request) throw new UsageError(`invalid prompt release ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  return { request, version: promptDigest(parsePromptSpec(request.source)).slice(0, 12) };
}

/** How a prompt release's outcome reads to a script. */
function exitCodeFor(outcome: PromptReleaseOutcome): ExitCode {
  if (outcome === PromptReleaseOutcome.Promoted) return ExitCode.Ok;
  if (outcome === PromptReleaseOutcome.Failed || outcome === PromptReleaseOutcome.Running) return ExitCode.Failure;
  return ExitCode.NoCandidate;
}

/** The outcome of an ended prompt release: its result, or its failure's type and headline. */
async function waitForOutcome(handle: WorkflowHandle): Promise<{ outcome: PromptReleaseOutcome; result?: PromptReleaseResult | PromptReleasePushResult; failure?: string }> {
  try {
    const result = (await handle.result()) as PromptReleaseResult | PromptReleasePushResult;
    return { outcome: result.outcome, result };
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const cause = err.cause instanceof ApplicationFailure ? err.cause : undefined;
    return { outcome: promptOutcomeOfFailure(cause?.type ?? undefined), failure: (cause ?? err).message.split('\n', 1)[0]! };
  }
}

/** `forgeline prompt release <release.yaml>`: start (or follow) the prompt's release on the control queue. */
export async function promptRelease(client: Client, cfg: ForgelineConfig, file: string, out: Output, opts: { json?: boolean; wait?: boolean }): Promise<number> {
  const { request, version } = await readLocalPromptRelease(file);
  const log = opts.json ? out.toStderr().log : out.log;
  const workflowId = promptReleaseWorkflowId(request.prompt, version);
  const handle = await startOrFollow(client, cfg, log, 'prompt release', 'promptReleaseWorkflow', {
    workflowId,
    args: [request],
    typedSearchAttributes: [
      { key: ForgelineLifecycle, value: Lifecycle.PromptRelease },
      { key: ForgelineModel, value: request.prompt },
    ],
    staticSummary: `prompt release ${request.prompt}@${version} (${file})`,
  });
  if (!opts.wait) {
    if (opts.json) out.json({ workflowId: handle.workflowId, prompt: request.prompt, version });
    else log(`  status: forgeline prompt status ${handle.workflowId}`);
    return ExitCode.Ok;
  }
  const ended = await waitForOutcome(handle);
  if (opts.json) out.json({ workflowId: handle.workflowId, prompt: request.prompt, version, ...ended });
  else out.log(`prompt release ${handle.workflowId} ended ${ended.outcome}${ended.failure ? `: ${ended.failure}` : ''}`);
  return exitCodeFor(ended.outcome);
}

/** `forgeline prompt status <releaseId>`: the release's status query, as text or JSON. */
export async function promptStatus(client: Client, id: string, out: Output, json?: boolean): Promise<number> {
  const handle = client.workflow.getHandle(id);
  let status: PromptReleaseStatus;
  try {
    status = await handle.query<PromptReleaseStatus>('status');
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) throw new CliError(`no prompt release ${id}: see the workflow ID \`forgeline prompt release\` printed`, ExitCode.Usage);
    throw err;
  }
  if (status?.kind !== 'prompt-release') throw new CliError(`${id} is not a prompt release (see forgeline release status for model releases)`, ExitCode.Usage);
  if (json) out.json({ workflowId: id, status });
  else for (const line of renderPromptReleaseDetails(status, id).split('\n')) out.log(line);
  return ExitCode.Ok;
}

/** Adds `forgeline prompt list|show` (read-only: aliases move only through prompt releases) and `prompt release|status`. */
export function addPromptCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig, withClient?: WithClient): void {
  const prompt = program.command('prompt').description('the prompt registry: immutable prompt versions and their candidate/production aliases (read-only; aliases move through prompt releases)');
  prompt
    .command('list')
    .description('list published prompts with their aliases, or one prompt’s versions')
    .argument('[name]', 'prompt name, e.g. support-answer')
    .option('--json', 'print machine-readable JSON only: {prompts: [{name, aliases}]} or {name, versions, aliases}')
    .action(run(async (name: string | undefined, opts: { json?: boolean }) => promptList(artifactStoreFor(cfg()), name, out, opts.json)));
  prompt
    .command('show')
    .description('show one prompt version: template, variables, model binding, examples')
    .argument('<ref>', 'name, name@<version> or name@<alias> (default alias: production)')
    .option('--json', 'print the version record as JSON only')
    .action(run(async (ref: string, opts: { json?: boolean }) => promptShow(artifactStoreFor(cfg()), ref, out, opts.json)));
  if (!withClient) return;
  prompt
    .command('release')
    .description('release a prompt: publish, evaluate against the gates, optional approval, canary through the gateway, production (or rollback); steer it with forgeline release approve|reject|pause|resume|promote-now|rollback|abort <id>')
    .argument('<release.yaml>', 'the release file, e.g. prompts/support-answer/release.yaml (paths in it are relative to the repository root)')
    .option('--wait', 'wait for the release to end; exit 0 Promoted, 3 GateFailed/Rejected/RolledBack/Aborted, 1 Failed')
    .option('--json', 'print machine-readable JSON only: {workflowId, prompt, version} (with --wait also {outcome, result | failure})')
    .action(run(async (file: string, opts: { json?: boolean; wait?: boolean }) => {
      const c = cfg();
      return withClient(c, (client) => promptRelease(client, c, file, out, opts));
    }));
  prompt
    .command('status')
    .description('show a prompt release: stage, outcome, versions, evaluation, canary step, weights and verdicts')
    .argument('<releaseId>', 'the workflow ID forgeline prompt release printed, e.g. prompt-release/support-answer/3f2a9c0d1b4e')
    .option('--json', 'print machine-readable JSON only: {workflowId, status}')
    .action(run(async (id: string, opts: { json?: boolean }) => withClient(cfg(), (client) => promptStatus(client, id, out, opts.json))));
}
