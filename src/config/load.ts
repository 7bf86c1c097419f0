import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadClientConfig, loadClientConfigProfile, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import type { z } from 'zod';
import { ConfigError } from '../ports/errors';
import { ConfigSchema, ENV_BINDINGS, RENAMED_ENV, type EnvBinding, type ForgelineConfig } from './schema';

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

/** The selected profile of Temporal's client config file (`temporal.toml`), if any. */
interface TemporalProfile {
  file?: string;
  name: string;
  /** Values by config path (e.g. `temporal.tls.certPath`). */
  values: Map<string, unknown>;
}

/**
 * Where Temporal's tools look for `temporal.toml` when TEMPORAL_CONFIG_FILE is unset. Only used to
 * name the file in messages; @temporalio/envconfig finds and reads it.
 */
function defaultTemporalConfigFile(env: Record<string, string>): string | undefined {
  if (process.platform === 'win32') return env.APPDATA && path.join(env.APPDATA, 'temporalio', 'temporal.toml');
  if (process.platform === 'darwin') return env.HOME && path.join(env.HOME, 'Library', 'Application Support', 'temporalio', 'temporal.toml');
  const dir = env.XDG_CONFIG_HOME || (env.HOME && path.join(env.HOME, '.config'));
  return dir ? path.join(dir, 'temporalio', 'temporal.toml') : undefined;
}

function dataSourceValue(source: ConfigDataSource | undefined, kind: 'path' | 'data'): string | undefined {
  if (!source) return undefined;
  if (kind === 'path') return 'path' in source ? source.path : undefined;
  if ('path' in source) return undefined;
  return typeof source.data === 'string' ? source.data : Buffer.from(source.data).toString('utf8');
}

/**
 * Read the selected profile of Temporal's client config file with @temporalio/envconfig
 * (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE, the default location, strict keys), as the `temporal`
 * CLI does. Environment variables are applied by loadConfig, on top, so errors can name them.
 */
function readTemporalProfile(env: NodeJS.ProcessEnv, cwd: string): TemporalProfile {
  const vars: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') vars[k] = v;
  const explicit = vars.TEMPORAL_CONFIG_FILE;
  if (explicit) {
    vars.TEMPORAL_CONFIG_FILE = path.resolve(cwd, explicit);
    if (!existsSync(vars.TEMPORAL_CONFIG_FILE)) throw new ConfigError(`TEMPORAL_CONFIG_FILE='${explicit}': file not found (resolved to ${vars.TEMPORAL_CONFIG_FILE}). Fix the path or unset TEMPORAL_CONFIG_FILE.`);
  }
  const file = vars.TEMPORAL_CONFIG_FILE ?? defaultTemporalConfigFile(vars);
  const name = vars.TEMPORAL_PROFILE ?? 'default';
  let profile: ClientConfigProfile;
  try {
    profile = loadClientConfigProfile({ disableEnv: true, configFileStrict: true, overrideEnvVars: vars });
  } catch (err) {
    // @temporalio/envconfig 1.24.0 throws a TypeError on a file without [profile.*] tables (an empty file).
    if (err instanceof TypeError && !vars.TEMPORAL_PROFILE) return { file, name, values: new Map() };
    if (err instanceof TypeError || /^Profile '.*' not found/.test((err as Error).message)) {
      const names = err instanceof TypeError ? [] : Object.keys(loadClientConfig({ overrideEnvVars: vars }).profiles);
      const has = file && existsSync(file) ? `it has ${names.length ? names.map((n) => `'${n}'`).join(', ') : 'no profiles'}` : 'the file does not exist';
      throw new ConfigError(`TEMPORAL_PROFILE='${name}': no such profile in ${file ?? 'the Temporal config file'} (${has}). Fix TEMPORAL_PROFILE or unset it.`);
    }
    const e = err as Error & { line?: number; column?: number };
    const what = e.line !== undefined ? `invalid TOML at line ${e.line} column ${e.column ?? '?'}: ${e.message.split('\n')[0]!.replace(/^Invalid TOML document: /, '')}` : e.message.replace(/^Validation error: /, '');
    throw new ConfigError(`Temporal config file ${file ?? ''}: ${what}. Fix the file, or point TEMPORAL_CONFIG_FILE elsewhere.`, { cause: err });
  }
  const values = new Map<string, unknown>();
  const put = (key: string, value: unknown) => value !== undefined && values.set(key, value);
  put('temporal.address', profile.address);
  put('temporal.namespace', profile.namespace);
  put('temporal.apiKey', profile.apiKey);
  const tls = profile.tls;
  if (tls) {
    // As in Temporal's tools: a [tls] table turns TLS on unless it says `disabled = true`.
    put('temporal.tls.enabled', typeof tls.disabled === 'boolean' ? !tls.disabled : (tls.disabled ?? true));
    put('temporal.tls.serverName', tls.serverName);
    put('temporal.tls.certPath', dataSourceValue(tls.clientCert, 'path'));
    put('temporal.tls.certData', dataSourceValue(tls.clientCert, 'data'));
    put('temporal.tls.keyPath', dataSourceValue(tls.clientKey, 'path'));
    put('temporal.tls.keyData', dataSourceValue(tls.clientKey, 'data'));
    put('temporal.tls.caPath', dataSourceValue(tls.serverCACert, 'path'));
    put('temporal.tls.caData', dataSourceValue(tls.serverCACert, 'data'));
  }
  return { file, name, values };
}

interface Origins {
  sources: Map<string, string>;
  tree: Tree;
  file?: string;
  profile: TemporalProfile;
}

/** `VAR="value"`, or where in a file the value came from, for error messages (secrets redacted). */
function describeValue(p: readonly PropertyKey[], o: Origins): string {
  const key = p.join('.');
  const binding = ENV_BINDINGS.find((b) => b.path.length > 0 && samePath(p, b.path));
  const shown = binding?.secret ? '<redacted>' : JSON.stringify(getAt(o.tree, p));
  const source = o.sources.get(key);
  if (source === 'profile' && binding?.profileKey) return `${binding.profileKey}=${shown} in profile '${o.profile.name}' of ${o.profile.file} (or set ${binding.env})`;
  if (source === 'file' && o.file) return `${key}=${shown} in ${o.file}${binding ? ` (or set ${binding.env})` : ''}`;
  return binding ? `${binding.env}=${shown}` : `${key}=${shown}`;
}

function describeIssue(issue: z.core.$ZodIssue, o: Origins): string {
  return `${describeValue(issue.path, o)}: ${issue.message}`;
}

/**
 * Build the Forgeline config from defaults, the optional JSON file and the environment, in that
 * order of precedence (environment wins). Throws ConfigError whose message names every bad
 * variable, its value and what is allowed.
 */
export function loadConfig(options: LoadConfigOptions = {}): ForgelineConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const renamed = Object.entries(RENAMED_ENV).filter(([old]) => env[old]);
  if (renamed.length) {
    const lines = renamed.map(([old, now]) => `  - ${old} is no longer read: rename it to ${now} (Temporal's name, read by the temporal CLI too).`);
    throw new ConfigError(`invalid Forgeline configuration:\n${lines.join('\n')}`);
  }
  const { file, tree } = readConfigFile(env, cwd);
  const profile = readTemporalProfile(env, cwd);
  const sources = new Map<string, string>();
  for (const b of ENV_BINDINGS) {
    if (b.path.length > 0 && getAt(tree, b.path) !== undefined) sources.set(b.path.join('.'), 'file');
  }
  // Precedence: environment > forgeline.config.json > Temporal profile > defaults.
  for (const [key, value] of profile.values) {
    const p = key.split('.');
    if (getAt(tree, p) !== undefined) continue;
    setAt(tree, p, value);
    sources.set(key, 'profile');
  }
  const origins: Origins = { sources, tree, file, profile };

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
  // As in Temporal's tools: an API key or any TLS setting turns TLS on, unless TEMPORAL_TLS says otherwise.
  const tlsSettings = ['certPath', 'keyPath', 'caPath', 'certData', 'keyData', 'caData', 'serverName'].map((k) => getAt(tree, ['temporal', 'tls', k]));
  if ((getAt(tree, ['temporal', 'apiKey']) || tlsSettings.some(Boolean)) && sources.get('temporal.tls.enabled') === 'default') setAt(tree, ['temporal', 'tls', 'enabled'], 'true');

  const parsed = ConfigSchema.safeParse(tree);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => '  - ' + describeIssue(i, origins));
    throw new ConfigError(`invalid Forgeline configuration:\n${lines.join('\n')}\nSee the configuration table in README.md.`);
  }
  const cfg = parsed.data;
  const problems: string[] = [];
  if (cfg.tracker.kind === 'wandb' && !cfg.tracker.wandb.apiKey) problems.push('WANDB_API_KEY is required when FORGELINE_TRACKER=wandb: set it, or use FORGELINE_TRACKER=local.');
  const tls = cfg.temporal.tls;
  for (const [name, p, data] of [['CLIENT_CERT', 'certPath', tls.certData], ['CLIENT_KEY', 'keyPath', tls.keyData], ['SERVER_CA_CERT', 'caPath', tls.caData]] as const) {
    const file = tls[p];
    if (file && data) problems.push(`TEMPORAL_TLS_${name}_PATH and TEMPORAL_TLS_${name}_DATA (or their temporal.toml keys) both set: give the ${name.toLowerCase().replace(/_/g, ' ')} one way.`);
    if (file && !existsSync(path.resolve(cwd, file))) problems.push(`${describeValue(['temporal', 'tls', p], origins)}: file not found.`);
  }
  if (Boolean(tls.certPath ?? tls.certData) !== Boolean(tls.keyPath ?? tls.keyData)) problems.push('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (or their _DATA forms) go together: set both for mTLS, or neither.');
  const visible = cfg.gpu.visibleDevices?.split(',').length;
  if (cfg.gpu.pool !== 'cpu' && visible !== undefined && visible < cfg.gpu.count) {
    problems.push(`FORGELINE_GPU_COUNT=${cfg.gpu.count}, but CUDA_VISIBLE_DEVICES=${cfg.gpu.visibleDevices} names only ${visible} GPU(s): lower the count or list more devices.`);
  }
  if (problems.length) throw new ConfigError(`invalid Forgeline configuration:\n${problems.map((p) => '  - ' + p).join('\n')}`);
  return cfg;
}

/** The config with secrets replaced, for printing: every value an ENV_BINDINGS entry marks `secret`. */
export function redactConfig(cfg: ForgelineConfig): ForgelineConfig {
  const copy = structuredClone(cfg) as unknown as Tree;
  for (const b of ENV_BINDINGS) {
    if (b.secret && b.path.length > 0 && getAt(copy, b.path) !== undefined) setAt(copy, b.path, '<redacted>');
  }
  return copy as unknown as ForgelineConfig;
}
