import type { Command } from 'commander';
import type { ForgelineConfig } from '../config/schema';
import { PROMPT_ALIASES, type PromptAlias } from '../contracts/prompt';
import type { ArtifactStore } from '../ports/artifact-store';
import { PromptRegistry, type PromptAliasRecord, type PromptVersionRecord } from '../registry/prompt-registry';
import { ExitCode, UsageError } from './errors';
import type { Output } from './output';
import { artifactStoreFor } from './release';

type Run = <A extends unknown[]>(fn: (...args: A) => Promise<number>) => (...args: A) => Promise<void>;

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

/** Adds the read-only `forgeline prompt list|show` (aliases move only through the prompt release workflow). */
export function addPromptCommands(program: Command, out: Output, run: Run, cfg: () => ForgelineConfig): void {
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
}
