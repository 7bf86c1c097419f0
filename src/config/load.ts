import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { ConfigError } from '../ports/errors';
import { ConfigSchema, ENV_BINDINGS, type EnvBinding, type ForgelineConfig } from './schema';

export type { ForgelineConfig } from './schema';

/** The repository root (where package.json lives), independent of the working directory. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface LoadConfigOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

type Tree = Record<string, unknown>;

function getAt(tree: Tree, p: readonly (string | number | symbol)[]): unknown {
  let node: unknown = tree;
  for (const k of p) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Tree)[k as string];
  }
  return node;
}

function setAt(tree: Tree, p: readonly string[], value: unknown): void {
  let node = tree;
  for (const k of p.slice(0, -1)) {
    if (node[k] === null || typeof node[k] !== 'object') node[k] = {};
    node = node[k] as Tree;
  }
  node[p[p.length - 1]!] = value;
}

function samePath(a: readonly PropertyKey[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

function readConfigFile(env: NodeJS.ProcessEnv, cwd: string): { file?: string; tree: Tree } {
  const explicit = env.FORGELINE_CONFIG;
  const file = explicit ? path.resolve(cwd, explicit) : path.join(cwd, 'forgeline.config.json');
  if (!existsSync(file)) {
    if (explicit) throw new ConfigError(`FORGELINE_CONFIG='${explicit}': file not found (resolved to ${file}). Fix the path or unset FORGELINE_CONFIG.`);
    return { tree: {} };
  }
  try {
    const tree = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) throw new Error('top level must be a JSON object');
    return { file, tree: tree as Tree };
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid: ${(err as Error).message}. Fix the JSON or point FORGELINE_CONFIG elsewhere.`);
  }
}

function describeIssue(issue: z.core.$ZodIssue, sources: Map<string, string>, tree: Tree, file?: string): string {
  const key = issue.path.join('.');
  const binding = ENV_BINDINGS.find((b) => b.path.length > 0 && samePath(issue.path, b.path));
  const raw = getAt(tree, issue.path);
  const shown = binding?.secret ? '<redacted>' : JSON.stringify(raw);
  const source = sources.get(key);
  const where = source === 'env' && binding
    ? `${binding.env}=${shown}`
    : file && source === 'file'
      ? `${key}=${shown} in ${file}${binding ? ` (or set ${binding.env})` : ''}`
      : binding ? `${binding.env}=${shown}` : `${key}=${shown}`;
  return `${where}: ${issue.message}`;
}

/**
 * Build the Forgeline config from defaults, the optional JSON file and the environment, in that
 * order of precedence (environment wins). Throws ConfigError whose message names every bad
 * variable, its value and what is allowed.
 */
export function loadConfig(options: LoadConfigOptions = {}): ForgelineConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const { file, tree } = readConfigFile(env, cwd);
  const sources = new Map<string, string>();
  for (const b of ENV_BINDINGS) {
    if (b.path.length > 0 && getAt(tree, b.path) !== undefined) sources.set(b.path.join('.'), 'file');
  }

  const apply = (b: EnvBinding, value: string, source: string): void => {
    setAt(tree, b.path, value);
    sources.set(b.path.join('.'), source);
  };
  // Explicit values from the environment first, so derived defaults (e.g. the artifact root
  // under FORGELINE_HOME) see them.
  for (const b of ENV_BINDINGS) {
    const v = env[b.env];
    if (b.path.length > 0 && v !== undefined && v !== '') apply(b, v, 'env');
  }
  const home = path.resolve(cwd, String(getAt(tree, ['home']) ?? '.forgeline'));
  setAt(tree, ['home'], home);
  for (const b of ENV_BINDINGS) {
    if (b.path.length === 0 || b.default === undefined || getAt(tree, b.path) !== undefined) continue;
    const value = typeof b.default === 'function' ? b.default({ home, repoRoot: REPO_ROOT }) : b.default;
    apply(b, value, 'default');
  }
  const apiKey = getAt(tree, ['temporal', 'apiKey']);
  const cert = getAt(tree, ['temporal', 'tls', 'certPath']);
  if ((apiKey || cert) && sources.get('temporal.tls.enabled') === 'default') setAt(tree, ['temporal', 'tls', 'enabled'], 'true');

  const parsed = ConfigSchema.safeParse(tree);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => '  - ' + describeIssue(i, sources, tree, file));
    throw new ConfigError(`invalid Forgeline configuration:\n${lines.join('\n')}\nSee the configuration table in README.md.`);
  }
  const cfg = parsed.data;
  const problems: string[] = [];
  if (cfg.tracker.kind === 'wandb' && !cfg.tracker.wandb.apiKey) problems.push('WANDB_API_KEY is required when FORGELINE_TRACKER=wandb: set it, or use FORGELINE_TRACKER=local.');
  if (Boolean(cfg.temporal.tls.certPath) !== Boolean(cfg.temporal.tls.keyPath)) problems.push('TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both for mTLS, or neither.');
  for (const [envName, p] of [['TEMPORAL_TLS_CERT', cfg.temporal.tls.certPath], ['TEMPORAL_TLS_KEY', cfg.temporal.tls.keyPath], ['TEMPORAL_TLS_CA', cfg.temporal.tls.caPath]] as const) {
    if (p && !existsSync(path.resolve(cwd, p))) problems.push(`${envName}='${p}': file not found.`);
  }
  if (problems.length) throw new ConfigError(`invalid Forgeline configuration:\n${problems.map((p) => '  - ' + p).join('\n')}`);
  return cfg;
}

/** The config with secrets replaced, for printing. */
export function redactConfig(cfg: ForgelineConfig): ForgelineConfig {
  const copy = structuredClone(cfg);
  if (copy.temporal.apiKey) copy.temporal.apiKey = '<redacted>';
  if (copy.tracker.wandb.apiKey) copy.tracker.wandb.apiKey = '<redacted>';
  return copy;
}
