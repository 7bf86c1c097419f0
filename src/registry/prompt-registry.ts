import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson, parsePromptSpec, PROMPT_ALIASES, PROMPT_NAME, type PromptAlias, type PromptSpec } from '../contracts/prompt';
import { ErrorType } from '../contracts/errors';
import type { ArtifactStore } from '../ports/artifact-store';
import { ForgelineError, RegistryConflictError } from '../ports/errors';

/**
 * The prompt registry: immutable prompt versions and per-prompt aliases (`candidate`,
 * `production`), in the ArtifactStore next to the model registry, written the same way.
 *
 *   prompts/<name>/versions/<version>.json               immutable version records
 *   prompts/<name>/aliases/<alias>.json                   where an alias points now
 *   prompts/<name>/alias-history/<alias>/<at>-<id>.json   one object per move, never rewritten
 *
 * A version id is the first 12 hex digits of the sha256 of the prompt's canonical JSON
 * (template, variables, model binding, examples, description): publishing the same content twice
 * returns the first record and writes nothing. A version record is created only if absent; on
 * read its content is checked against its digest, so an edited record is an error, not a silent
 * change. Aliases are moved only by compare-and-swap on the alias document's etag (the prompt
 * release workflow will be the only caller); the registry never reads the clock: `createdAt` and
 * `at` come from the caller (workflow time).
 */
export interface PromptVersionRecord {
  schema: 'forgeline.prompt.version/v1';
  name: string;
  version: string;
  /** `prompt://<name>@<version>`. */
  ref: string;
  /** Full sha256 of the canonical JSON of `prompt`. */
  digest: string;
  prompt: PromptSpec;
  createdAt: string;
  /** Free-form provenance (git sha, who published); not part of the digest. */
  source?: Record<string, string>;
}

export interface PromptAliasRecord {
  schema: 'forgeline.prompt.alias/v1';
  name: string;
  alias: PromptAlias;
  version: string;
  movedAt: string;
  by: string;
  reason: string;
  moveId: string;
  releaseWorkflowId?: string;
  /** The version this move replaced; absent for an alias's first move. */
  replaced?: { version: string; moveId: string };
}

const Timestamp = z.iso.datetime({ offset: true });
const VERSION = /^[0-9a-f]{12}$/;

const PromptAliasMoveSchema = z.strictObject({
  version: z.string().regex(VERSION, 'expected a 12-hex-digit prompt version id'),
  /** The version the alias must point at now, or null for "must not exist yet". */
  expectedVersion: z.string().regex(VERSION, 'expected a 12-hex-digit prompt version id, or null').nullable(),
  by: z.string().trim().min(1, 'say who moves the alias (for the audit trail)'),
  reason: z.string().trim().min(1, 'say why the alias moves (for the audit trail)'),
  at: Timestamp,
  /** Unique per move and stable across retries (workflow ID + activity ID). */
  moveId: z.string().min(1).max(200),
  releaseWorkflowId: z.string().min(1).optional(),
});
export type PromptAliasMove = z.infer<typeof PromptAliasMoveSchema>;

const JSON_TYPE = { contentType: 'application/json' };

/** A stored prompt record does not match its digest: it was edited in place. Terminal. */
export class PromptIntegrityError extends ForgelineError {
  constructor(key: string, expected: string, actual: string) {
    super(ErrorType.ArtifactIntegrity, `prompt record ${key} was modified: its content hashes to ${actual}, its digest says ${expected}; prompt versions are immutable, publish a new version instead`, true);
  }
}

function invalid(message: string): ForgelineError {
  return new ForgelineError(ErrorType.InvalidSpec, message, true);
}

function checkName(name: string): void {
  if (!PROMPT_NAME.test(name)) throw invalid(`prompt name '${name}' is invalid: use lowercase letters, digits and dashes`);
}

function checkAlias(alias: string): asserts alias is PromptAlias {
  if (!(PROMPT_ALIASES as readonly string[]).includes(alias)) throw invalid(`prompt alias '${alias}' is invalid: use one of ${PROMPT_ALIASES.join(', ')}`);
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function promptDigest(spec: PromptSpec): string {
  return createHash('sha256').update(canonicalJson(spec)).digest('hex');
}

export function promptRef(name: string, version: string): string {
  return `prompt://${name}@${version}`;
}

const versionKey = (name: string, version: string) => `prompts/${name}/versions/${version}.json`;
const aliasKey = (name: string, alias: PromptAlias) => `prompts/${name}/aliases/${alias}.json`;
function historyKey(name: string, alias: PromptAlias, at: string, moveId: string): string {
  const stamp = new Date(at).toISOString().replace(/[^0-9TZ]/g, '');
  return `prompts/${name}/alias-history/${alias}/${stamp}-${moveId.replace(/[^A-Za-z0-9_-]+/g, '-')}.json`;
}

export class PromptRegistry {
  constructor(private readonly store: ArtifactStore) {}

  /**
   * Publish a prompt as an immutable version (validated first: a PromptError names every bad
   * field). Idempotent: the same content returns the record first written, whatever `createdAt`.
   */
  async publish(input: { prompt: unknown; createdAt: string; source?: Record<string, string> }): Promise<PromptVersionRecord> {
    if (!Timestamp.safeParse(input.createdAt).success) throw invalid(`createdAt ${JSON.stringify(input.createdAt)} is invalid: pass an ISO 8601 time, e.g. 2026-12-01T12:00:00.000Z`);
    const prompt = parsePromptSpec(input.prompt);
    const digest = promptDigest(prompt);
    const version = digest.slice(0, 12);
    const record: PromptVersionRecord = {
      schema: 'forgeline.prompt.version/v1',
      name: prompt.name,
      version,
      ref: promptRef(prompt.name, version),
      digest,
      prompt,
      createdAt: input.createdAt,
      ...(input.source ? { source: input.source } : {}),
    };
    const key = versionKey(prompt.name, version);
    const created = await this.store.putIfAbsent(key, toJson(record), JSON_TYPE);
    if (created.written) return record;
    const existing = await this.getVersion(prompt.name, version);
    if (!existing) throw new Error(`prompt version ${key} was refused as existing but cannot be read: retry`);
    if (existing.digest !== digest) {
      throw new RegistryConflictError(`prompt ${prompt.name}`, `version ${version}`, `it holds content with digest ${existing.digest}, this prompt has ${digest}. Nothing was changed`);
    }
    return existing;
  }

  /** A version, checked against its digest; undefined when absent. */
  async getVersion(name: string, version: string): Promise<PromptVersionRecord | undefined> {
    checkName(name);
    if (!VERSION.test(version)) throw invalid(`prompt version '${version}' is invalid: expected 12 hex digits`);
    const key = versionKey(name, version);
    const got = await this.store.getWithEtag(key);
    if (!got) return undefined;
    const record = JSON.parse(got.body.toString('utf8')) as PromptVersionRecord;
    // Hash the stored content as stored (not re-parsed): a later schema default must not change old digests.
    const actual = createHash('sha256').update(canonicalJson(record.prompt)).digest('hex');
    if (actual !== record.digest || record.version !== record.digest.slice(0, 12) || record.name !== name || record.version !== version) {
      throw new PromptIntegrityError(key, record.digest, actual);
    }
    return record;
  }

  /** `<version>` or `<alias>` of prompt `name`: the version record, or a clear error. */
  async resolve(name: string, versionOrAlias: string): Promise<PromptVersionRecord> {
    let version = versionOrAlias;
    if ((PROMPT_ALIASES as readonly string[]).includes(versionOrAlias)) {
      const alias = await this.getAlias(name, versionOrAlias as PromptAlias);
      if (!alias) throw invalid(`prompt ${name} has no ${versionOrAlias} alias yet`);
      version = alias.version;
    }
    const record = await this.getVersion(name, version);
    if (!record) throw invalid(`prompt ${name}@${version} is not published: see forgeline prompt list ${name}`);
    return record;
  }

  async listVersions(name: string): Promise<PromptVersionRecord[]> {
    checkName(name);
    const out: PromptVersionRecord[] = [];
    for await (const o of this.store.listAll(`prompts/${name}/versions/`)) {
      const m = /\/([0-9a-f]{12})\.json$/.exec(o.key);
      if (m) out.push((await this.getVersion(name, m[1]!))!);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.version.localeCompare(b.version));
  }

  async listPrompts(): Promise<string[]> {
    const names = new Set<string>();
    for await (const o of this.store.listAll('prompts/')) names.add(o.key.split('/')[1]!);
    return [...names].sort();
  }

  async getAlias(name: string, alias: PromptAlias): Promise<PromptAliasRecord | undefined> {
    return (await this.readAlias(name, alias))?.record;
  }

  /**
   * Compare-and-swap an alias onto `move.version` (published). `move.expectedVersion` is the
   * precondition (null: the alias must not exist yet); when it fails, or another move lands
   * between our read and our write, a RegistryConflictError names the holder and nothing changes.
   * Idempotent per `move.moveId`: a retry of a move that landed returns its record.
   */
  async moveAlias(name: string, alias: PromptAlias, move: PromptAliasMove): Promise<PromptAliasRecord> {
    checkName(name);
    checkAlias(alias);
    const parsed = PromptAliasMoveSchema.safeParse(move);
    if (!parsed.success) throw invalid(`invalid prompt alias move: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(move)'}: ${i.message}`).join('; ')}`);
    if (!(await this.getVersion(name, move.version))) throw invalid(`cannot move ${name}@${alias}: prompt version ${move.version} is not published`);

    const current = await this.readAlias(name, alias);
    if (current?.record.moveId === move.moveId) return this.landed(current.record, move);
    const recorded = await this.store.getWithEtag(historyKey(name, alias, move.at, move.moveId));
    if (recorded) return this.landed(JSON.parse(recorded.body.toString('utf8')) as PromptAliasRecord, move);

    const holder = current ? `it points at ${current.record.version} (moved by ${current.record.by} at ${current.record.movedAt}: ${current.record.reason})` : 'it does not exist';
    if ((current?.record.version ?? null) !== move.expectedVersion) {
      throw new RegistryConflictError(`prompt ${name}`, `alias ${alias}`, `this move to ${move.version} expected it to ${move.expectedVersion === null ? 'not exist yet' : `point at ${move.expectedVersion}`}, but ${holder}. Nothing was changed`);
    }
    const record: PromptAliasRecord = {
      schema: 'forgeline.prompt.alias/v1',
      name,
      alias,
      version: move.version,
      movedAt: move.at,
      by: move.by,
      reason: move.reason,
      moveId: move.moveId,
      ...(move.releaseWorkflowId ? { releaseWorkflowId: move.releaseWorkflowId } : {}),
      ...(current ? { replaced: { version: current.record.version, moveId: current.record.moveId } } : {}),
    };
    const swapped = await this.store.compareAndSwap(aliasKey(name, alias), toJson(record), current?.etag ?? null, JSON_TYPE);
    if (!swapped.written) {
      const winner = await this.readAlias(name, alias);
      if (winner?.record.moveId === move.moveId) return this.landed(winner.record, move);
      throw new RegistryConflictError(`prompt ${name}`, `alias ${alias}`, `another move landed while this one (to ${move.version}, move ${move.moveId}) was being made: it now points at ${winner?.record.version ?? '(nothing)'}. Nothing was changed`);
    }
    await this.store.putIfAbsent(historyKey(name, alias, move.at, move.moveId), toJson(record), JSON_TYPE);
    return record;
  }

  /** Every move of `alias`, oldest first. */
  async aliasHistory(name: string, alias: PromptAlias): Promise<PromptAliasRecord[]> {
    checkName(name);
    checkAlias(alias);
    const out: PromptAliasRecord[] = [];
    for await (const o of this.store.listAll(`prompts/${name}/alias-history/${alias}/`)) out.push(JSON.parse((await this.store.getBytes(o.key)).toString('utf8')) as PromptAliasRecord);
    return out;
  }

  /** A retried move that already landed: same version, or a conflict (move IDs are single-use). */
  private async landed(record: PromptAliasRecord, move: PromptAliasMove): Promise<PromptAliasRecord> {
    if (record.version !== move.version) {
      throw new RegistryConflictError(`prompt ${record.name}`, `alias ${record.alias}`, `move ID ${move.moveId} was already used, by the move to ${record.version} at ${record.movedAt}; each move needs its own ID. Nothing was changed`);
    }
    await this.store.putIfAbsent(historyKey(record.name, record.alias, record.movedAt, record.moveId), toJson(record), JSON_TYPE);
    return record;
  }

  private async readAlias(name: string, alias: PromptAlias): Promise<{ record: PromptAliasRecord; etag: string } | undefined> {
    const got = await this.store.getWithEtag(aliasKey(name, alias));
    return got && { record: JSON.parse(got.body.toString('utf8')) as PromptAliasRecord, etag: got.etag };
  }
}
