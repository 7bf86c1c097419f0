import { z } from 'zod';
import type { ArtifactStore } from '../ports/artifact-store';
import { RegistryConflictError } from '../ports/errors';

/**
 * The model registry: immutable, lineage-carrying versions of every artifact a release makes,
 * and per-model aliases (`candidate`, `production`, `previous`) whose every move is recorded.
 * It lives in the ArtifactStore under `registry/`, so it works on a local directory and on S3.
 *
 *   registry/<model>/versions/<kind>/<version>.json       immutable version records
 *   registry/<model>/aliases/<alias>.json                   where an alias points now
 *   registry/<model>/alias-history/<alias>/<at>-<id>.json   one object per move, never rewritten
 *
 * A version id is the first 12 hex digits of the artifact's manifest digest: the same bytes
 * always get the same id, so registering twice is a no-op, and no counter needs a lock.
 *
 * Every write is conditional, so racing releases cannot overwrite each other: a version record
 * is created only if absent, and an alias document is replaced only if it is still the one the
 * move read (compare-and-swap on its etag). The loser gets a RegistryConflictError naming the
 * model, the alias or version, and who holds it. The registry never reads the clock: audit
 * times (`createdAt`, `at`) come from the caller, i.e. from workflow time, so a retried activity
 * writes the same records again.
 */
export const ARTIFACT_KINDS = ['base', 'adapter', 'merged', 'quantized', 'eval-report', 'dataset'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];
export const ALIAS_NAMES = ['candidate', 'production', 'previous'] as const;
export type AliasName = (typeof ALIAS_NAMES)[number];
export type AliasVersions = Partial<Record<ArtifactKind, string>>;

export interface Lineage {
  baseModel?: { ref: string; digest?: string };
  datasetSha256?: string;
  recipe?: string;
  hyperparameters?: Record<string, unknown>;
  gitSha?: string;
  releaseWorkflowId?: string;
  metrics?: Record<string, number>;
  /** Versions this one was made from, e.g. the adapter a quantized model merged. */
  parents?: Record<string, string>;
}

export interface VersionRecord {
  schema: 'forgeline.registry.version/v1';
  model: string;
  kind: ArtifactKind;
  version: string;
  /** `registry://<model>/<kind>@<version>`: what a ReleaseSpec's `base.ref` names. */
  ref: string;
  artifact: { prefix: string; uri: string; digest: string; sizeBytes?: number };
  lineage: Lineage;
  createdAt: string;
}

export interface AliasRecord {
  schema: 'forgeline.registry.alias/v1';
  model: string;
  alias: AliasName;
  /** The release this alias points to, by artifact kind. */
  versions: Partial<Record<ArtifactKind, string>>;
  releaseWorkflowId?: string;
  movedAt: string;
  by: string;
  reason: string;
  /** The move that wrote this record (absent in records written before moves had IDs). */
  moveId?: string;
  /** What the alias pointed at before this move; absent for an alias's first move. */
  replaced?: { versions: AliasVersions; releaseWorkflowId?: string; moveId?: string };
}

export interface AliasMove {
  versions: AliasVersions;
  releaseWorkflowId?: string;
  by: string;
  reason: string;
  /** When (ISO 8601), from workflow time: the registry never reads the clock for audit fields. */
  at: string;
  /**
   * Unique per move and stable across retries (e.g. workflow ID + activity ID): a retried move
   * with the same ID is recognized as done, so it writes no second history entry.
   */
  moveId: string;
  /**
   * Precondition: the versions the alias must point at now, or `null` for "the alias must not
   * exist yet". Unset: no precondition beyond "no other move lands while this one is made".
   */
  expectedVersions?: AliasVersions | null;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;
const JSON_TYPE = { contentType: 'application/json' };

function checkName(what: string, v: string): void {
  if (!NAME.test(v)) throw new Error(`registry ${what} '${v}' is invalid: use lowercase letters, digits and dashes`);
}

function checkKind(kind: string): void {
  if (!(ARTIFACT_KINDS as readonly string[]).includes(kind)) throw new Error(`registry kind '${kind}' is invalid: use one of ${ARTIFACT_KINDS.join(', ')}`);
}

function checkAlias(alias: string): void {
  if (!(ALIAS_NAMES as readonly string[]).includes(alias)) throw new Error(`registry alias '${alias}' is invalid: use one of ${ALIAS_NAMES.join(', ')}`);
}

const Timestamp = z.iso.datetime({ offset: true });

function checkTimestamp(field: string, value: string): void {
  if (!Timestamp.safeParse(value).success) {
    throw new Error(`registry ${field} ${JSON.stringify(value)} is invalid: pass an ISO 8601 time from workflow time, e.g. 2026-12-01T12:00:00.000Z`);
  }
}

const VersionsSchema = z.partialRecord(z.enum(ARTIFACT_KINDS), z.string().regex(/^[0-9a-f]{12}$/, 'expected a 12-hex-digit version id'));
const AliasMoveSchema = z.object({
  versions: VersionsSchema,
  releaseWorkflowId: z.string().min(1).optional(),
  by: z.string().trim().min(1, 'say who moves the alias (for the audit trail)'),
  reason: z.string().trim().min(1, 'say why the alias moves (for the audit trail)'),
  at: Timestamp,
  moveId: z.string().min(1).max(200),
  expectedVersions: VersionsSchema.nullable().optional(),
});

function checkMove(move: AliasMove): void {
  const parsed = AliasMoveSchema.safeParse(move);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(move)'}: ${i.message}`).join('; ');
    throw new Error(`invalid alias move: ${fields}`);
  }
}

function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function aliasKey(model: string, alias: AliasName): string {
  return `registry/${model}/aliases/${alias}.json`;
}

/** `<at>-<moveId>.json`: keys sort by time, and one move has exactly one key. */
function historyKey(model: string, alias: AliasName, at: string, moveId: string): string {
  const stamp = new Date(at).toISOString().replace(/[^0-9TZ]/g, '');
  return `registry/${model}/alias-history/${alias}/${stamp}-${moveId.replace(/[^A-Za-z0-9_-]+/g, '-')}.json`;
}

function aliasRecord(model: string, alias: AliasName, move: AliasMove, replacing: AliasRecord | undefined): AliasRecord {
  return {
    schema: 'forgeline.registry.alias/v1',
    model,
    alias,
    versions: move.versions,
    ...(move.releaseWorkflowId ? { releaseWorkflowId: move.releaseWorkflowId } : {}),
    movedAt: move.at,
    by: move.by,
    reason: move.reason,
    moveId: move.moveId,
    ...(replacing
      ? {
          replaced: {
            versions: replacing.versions,
            ...(replacing.releaseWorkflowId ? { releaseWorkflowId: replacing.releaseWorkflowId } : {}),
            ...(replacing.moveId ? { moveId: replacing.moveId } : {}),
          },
        }
      : {}),
  };
}

function canonicalVersions(versions: AliasVersions): string {
  return JSON.stringify(Object.entries(versions).sort(([a], [b]) => a.localeCompare(b)));
}

/** `undefined` (no alias) matches only `null` (must not exist). */
function sameVersions(actual: AliasVersions | undefined, expected: AliasVersions | null): boolean {
  if (actual === undefined || expected === null) return actual === undefined && expected === null;
  return canonicalVersions(actual) === canonicalVersions(expected);
}

function formatVersions(versions: AliasVersions): string {
  const entries = Object.entries(versions);
  return entries.length ? entries.map(([kind, version]) => `${kind}@${version}`).join(', ') : '(no versions)';
}

function describeRelease(releaseWorkflowId: string | undefined): string {
  return releaseWorkflowId ? `, release ${releaseWorkflowId}` : '';
}

function describeMove(move: AliasMove): string {
  return `to ${formatVersions(move.versions)}${describeRelease(move.releaseWorkflowId)}, move ${move.moveId}`;
}

/** Who holds an alias, for conflict messages. */
function describeHolder(record: AliasRecord): string {
  return `it points at ${formatVersions(record.versions)}, moved by ${record.by} at ${record.movedAt}${describeRelease(record.releaseWorkflowId)} (${record.reason})`;
}

export function versionRef(model: string, kind: ArtifactKind, version: string): string {
  return `registry://${model}/${kind}@${version}`;
}

export function parseVersionRef(ref: string): { model: string; kind: ArtifactKind; version: string } {
  const m = /^registry:\/\/([a-z0-9-]+)\/([a-z-]+)@([0-9a-f]{12})$/.exec(ref);
  if (!m || !(ARTIFACT_KINDS as readonly string[]).includes(m[2]!)) throw new Error(`'${ref}' is not a registry reference (registry://<model>/<kind>@<12 hex>)`);
  return { model: m[1]!, kind: m[2] as ArtifactKind, version: m[3]! };
}

export class ModelRegistry {
  constructor(private readonly store: ArtifactStore) {}

  private versionKey(model: string, kind: ArtifactKind, version: string): string {
    return `registry/${model}/versions/${kind}/${version}.json`;
  }

  private async readJson<T>(key: string): Promise<T | undefined> {
    const got = await this.store.getWithEtag(key);
    return got && (JSON.parse(got.body.toString('utf8')) as T);
  }

  /**
   * Register a published artifact (a manifest-last directory) as an immutable version, created
   * only if absent. The version is its bytes: when the same artifact is registered again (a
   * retry, a racing release, a later release that made identical bytes), the first record stands
   * and is returned. A record for this version id with another digest is a RegistryConflictError.
   */
  async registerVersion(input: { model: string; kind: ArtifactKind; prefix: string; lineage: Lineage; createdAt: string }): Promise<VersionRecord> {
    checkName('model', input.model);
    checkKind(input.kind);
    checkTimestamp('createdAt', input.createdAt);
    const manifest = await this.store.readManifest(input.prefix);
    if (!manifest) throw new Error(`cannot register ${input.prefix}: it is not a published directory (no MANIFEST.json)`);
    const version = manifest.digest.slice(0, 12);
    const key = this.versionKey(input.model, input.kind, version);
    const record: VersionRecord = {
      schema: 'forgeline.registry.version/v1',
      model: input.model,
      kind: input.kind,
      version,
      ref: versionRef(input.model, input.kind, version),
      artifact: {
        prefix: manifest.prefix,
        uri: `${this.store.rootUri.replace(/\/$/, '')}/${manifest.prefix.replace(/\/$/, '')}`,
        digest: manifest.digest,
        sizeBytes: manifest.files.reduce((n, f) => n + f.size, 0),
      },
      lineage: input.lineage,
      createdAt: input.createdAt,
    };
    const created = await this.store.putIfAbsent(key, toJson(record), JSON_TYPE);
    if (created.written) return record;

    const existing = await this.readJson<VersionRecord>(key);
    if (!existing) throw new Error(`version record ${key} was refused as existing but cannot be read: retry`);
    if (existing.artifact.digest !== manifest.digest) {
      throw new RegistryConflictError(
        input.model,
        `version ${input.kind}@${version}`,
        `it is registered for digest ${existing.artifact.digest} (${existing.artifact.uri}${describeRelease(existing.lineage.releaseWorkflowId)}, ` +
          `at ${existing.createdAt}); ${input.prefix} has digest ${manifest.digest}. Nothing was changed`,
      );
    }
    return existing;
  }

  getVersion(model: string, kind: ArtifactKind, version: string): Promise<VersionRecord | undefined> {
    return this.readJson(this.versionKey(model, kind, version));
  }

  async resolve(ref: string): Promise<VersionRecord> {
    const { model, kind, version } = parseVersionRef(ref);
    const v = await this.getVersion(model, kind, version);
    if (!v) throw new Error(`${ref} is not registered`);
    return v;
  }

  async listVersions(model: string, kind?: ArtifactKind): Promise<VersionRecord[]> {
    const out: VersionRecord[] = [];
    for await (const o of this.store.listAll(`registry/${model}/versions/${kind ? `${kind}/` : ''}`)) {
      if (o.key.endsWith('.json')) out.push((await this.readJson<VersionRecord>(o.key))!);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.kind.localeCompare(b.kind));
  }

  async listModels(): Promise<string[]> {
    const models = new Set<string>();
    for await (const o of this.store.listAll('registry/')) models.add(o.key.split('/')[1]!);
    return [...models].sort();
  }

  async getAlias(model: string, alias: AliasName): Promise<AliasRecord | undefined> {
    return (await this.readAlias(model, alias))?.record;
  }

  /**
   * Point `alias` at a release: a compare-and-swap on the alias document, then one entry in the
   * alias history (append-only). Moving `production` also moves `previous` to the release it
   * replaced, so a rollback has a target.
   *
   * Conflicts (RegistryConflictError, nothing changed): `move.expectedVersions` is given and the
   * alias points elsewhere, or another move of this alias landed between our read and our write.
   *
   * Idempotent per `move.moveId`: a retry of a move that already landed (even one that crashed
   * before writing its history entry, or that a later move has since replaced) returns the
   * recorded move, completing its history entry and `previous`, and writes nothing twice.
   */
  async moveAlias(model: string, alias: AliasName, move: AliasMove): Promise<AliasRecord> {
    checkName('model', model);
    checkAlias(alias);
    checkMove(move);
    for (const [kind, version] of Object.entries(move.versions)) {
      if (!(await this.getVersion(model, kind as ArtifactKind, version!))) throw new Error(`cannot move ${model}@${alias}: ${versionRef(model, kind as ArtifactKind, version!)} is not registered`);
    }

    const current = await this.readAlias(model, alias);
    const landed = await this.landedMove(model, alias, move, current?.record);
    if (landed && !sameVersions(landed.versions, move.versions)) {
      throw new RegistryConflictError(
        model,
        `alias ${alias}`,
        `move ID ${move.moveId} was already used, by the move to ${formatVersions(landed.versions)} at ${landed.movedAt}${describeRelease(landed.releaseWorkflowId)}; ` +
          'each move needs its own ID (include the workflow run ID). Nothing was changed',
      );
    }
    if (landed) {
      await this.completeMove(landed, move.moveId);
      return landed;
    }
    if (move.expectedVersions !== undefined && !sameVersions(current?.record.versions, move.expectedVersions)) {
      throw new RegistryConflictError(
        model,
        `alias ${alias}`,
        `this move (${describeMove(move)}) expected it to ${move.expectedVersions === null ? 'not exist yet' : `point at ${formatVersions(move.expectedVersions)}`}, ` +
          `but ${current ? describeHolder(current.record) : 'it does not exist'}. Nothing was changed`,
      );
    }

    const record = aliasRecord(model, alias, move, current?.record);
    const swapped = await this.store.compareAndSwap(aliasKey(model, alias), toJson(record), current?.etag ?? null, JSON_TYPE);
    if (!swapped.written) {
      const winner = await this.readAlias(model, alias);
      if (winner?.record.moveId === move.moveId) {
        // Our own earlier attempt landed between our read and our write.
        await this.completeMove(winner.record, move.moveId);
        return winner.record;
      }
      throw new RegistryConflictError(
        model,
        `alias ${alias}`,
        `another move landed while this one (${describeMove(move)}) was being made: ` +
          `${winner ? describeHolder(winner.record) : 'it was removed'}. Nothing was changed; re-read the alias and move again if still wanted`,
      );
    }
    await this.completeMove(record, move.moveId);
    return record;
  }

  private async readAlias(model: string, alias: AliasName): Promise<{ record: AliasRecord; etag: string } | undefined> {
    const got = await this.store.getWithEtag(aliasKey(model, alias));
    return got && { record: JSON.parse(got.body.toString('utf8')) as AliasRecord, etag: got.etag };
  }

  /** The record of `move` if it already landed: it is current, it was replaced, or its history entry exists. */
  private async landedMove(model: string, alias: AliasName, move: AliasMove, current: AliasRecord | undefined): Promise<AliasRecord | undefined> {
    if (current?.moveId === move.moveId) return current;
    const recorded = await this.readJson<AliasRecord>(historyKey(model, alias, move.at, move.moveId));
    if (recorded) return recorded;
    if (current?.replaced?.moveId === move.moveId) return aliasRecord(model, alias, move, undefined);
    return undefined;
  }

  /** What follows a landed move; each step is idempotent, so a retry completes a crashed one. */
  private async completeMove(record: AliasRecord, moveId: string): Promise<void> {
    // Create-if-absent: a history entry, once written, is never rewritten.
    await this.store.putIfAbsent(historyKey(record.model, record.alias, record.movedAt, moveId), toJson(record), JSON_TYPE);
    const replaced = record.replaced;
    if (record.alias === 'production' && replaced && !sameVersions(replaced.versions, record.versions)) {
      await this.movePrevious(record, moveId, replaced);
    }
  }

  /**
   * Points `previous` at what `production` replaced, unless a later promotion has taken over
   * (it sets `previous` itself). A compare-and-swap too; on a lost race it looks again.
   */
  private async movePrevious(production: AliasRecord, productionMoveId: string, replaced: NonNullable<AliasRecord['replaced']>): Promise<void> {
    const moveId = `${productionMoveId}-previous`;
    for (let attempt = 1; attempt <= 5; attempt++) {
      const previous = await this.readAlias(production.model, 'previous');
      if (previous?.record.moveId === moveId) {
        await this.store.putIfAbsent(historyKey(production.model, 'previous', previous.record.movedAt, moveId), toJson(previous.record), JSON_TYPE);
        return;
      }
      if ((await this.getAlias(production.model, 'production'))?.moveId !== productionMoveId) return;
      const record = aliasRecord(
        production.model,
        'previous',
        {
          versions: replaced.versions,
          ...(replaced.releaseWorkflowId ? { releaseWorkflowId: replaced.releaseWorkflowId } : {}),
          by: production.by,
          reason: `replaced in production: ${production.reason}`,
          at: production.movedAt,
          moveId,
        },
        previous?.record,
      );
      const swapped = await this.store.compareAndSwap(aliasKey(production.model, 'previous'), toJson(record), previous?.etag ?? null, JSON_TYPE);
      if (swapped.written) {
        await this.store.putIfAbsent(historyKey(production.model, 'previous', record.movedAt, moveId), toJson(record), JSON_TYPE);
        return;
      }
    }
    throw new Error(`could not move ${production.model}@previous after 5 attempts (it kept changing): retry`);
  }

  /** Every move of `alias`, oldest first. */
  async aliasHistory(model: string, alias: AliasName): Promise<AliasRecord[]> {
    const out: AliasRecord[] = [];
    for await (const o of this.store.listAll(`registry/${model}/alias-history/${alias}/`)) out.push((await this.readJson<AliasRecord>(o.key))!);
    return out;
  }
}
