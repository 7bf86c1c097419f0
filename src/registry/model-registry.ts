import type { ArtifactStore } from '../ports/artifact-store';
import { ArtifactConflictError } from '../ports/errors';

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
 */
export const ARTIFACT_KINDS = ['base', 'adapter', 'merged', 'quantized', 'eval-report', 'dataset'] as const;
export type ArtifactKind = (typeof ARTIFACT_KINDS)[number];
export type AliasName = 'candidate' | 'production' | 'previous';

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
}

export interface AliasMove {
  versions: Partial<Record<ArtifactKind, string>>;
  releaseWorkflowId?: string;
  by: string;
  reason: string;
  /** When (ISO); passed in so that callers in workflows stay deterministic. */
  at: string;
  /** Unique per move (e.g. workflow ID + activity ID), to keep history keys distinct. */
  moveId: string;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

function checkName(what: string, v: string): void {
  if (!NAME.test(v)) throw new Error(`registry ${what} '${v}' is invalid: use lowercase letters, digits and dashes`);
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
    if (!(await this.store.head(key))) return undefined;
    return JSON.parse((await this.store.getBytes(key)).toString('utf8')) as T;
  }

  /**
   * Register a published artifact (a manifest-last directory) as an immutable version.
   * Idempotent: the same artifact again returns the existing record.
   */
  async registerVersion(input: { model: string; kind: ArtifactKind; prefix: string; lineage: Lineage; createdAt: string }): Promise<VersionRecord> {
    checkName('model', input.model);
    const manifest = await this.store.readManifest(input.prefix);
    if (!manifest) throw new Error(`cannot register ${input.prefix}: it is not a published directory (no MANIFEST.json)`);
    const version = manifest.digest.slice(0, 12);
    const key = this.versionKey(input.model, input.kind, version);
    const existing = await this.readJson<VersionRecord>(key);
    if (existing) {
      if (existing.artifact.digest !== manifest.digest) throw new ArtifactConflictError(key, `version ${version} already names digest ${existing.artifact.digest}`);
      return existing;
    }
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
    await this.store.put(key, JSON.stringify(record, null, 2) + '\n', { contentType: 'application/json' });
    return record;
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

  getAlias(model: string, alias: AliasName): Promise<AliasRecord | undefined> {
    return this.readJson(`registry/${model}/aliases/${alias}.json`);
  }

  /**
   * Point `alias` at a release. Every move is appended to the alias history first. Moving
   * `production` also moves the old production to `previous`, so a rollback has a target.
   */
  async moveAlias(model: string, alias: AliasName, move: AliasMove): Promise<AliasRecord> {
    checkName('model', model);
    if (!move.by.trim() || !move.reason.trim()) throw new Error('an alias move needs `by` and `reason` for the audit trail');
    for (const [kind, version] of Object.entries(move.versions)) {
      if (!(await this.getVersion(model, kind as ArtifactKind, version!))) throw new Error(`cannot move ${model}@${alias}: ${versionRef(model, kind as ArtifactKind, version!)} is not registered`);
    }
    if (alias === 'production') {
      const current = await this.getAlias(model, 'production');
      if (current && JSON.stringify(current.versions) !== JSON.stringify(move.versions)) {
        await this.writeAlias(model, 'previous', { ...move, versions: current.versions, releaseWorkflowId: current.releaseWorkflowId, reason: `replaced in production: ${move.reason}`, moveId: `${move.moveId}-previous` });
      }
    }
    return this.writeAlias(model, alias, move);
  }

  private async writeAlias(model: string, alias: AliasName, move: AliasMove): Promise<AliasRecord> {
    const record: AliasRecord = {
      schema: 'forgeline.registry.alias/v1',
      model,
      alias,
      versions: move.versions,
      ...(move.releaseWorkflowId ? { releaseWorkflowId: move.releaseWorkflowId } : {}),
      movedAt: move.at,
      by: move.by,
      reason: move.reason,
    };
    const body = JSON.stringify(record, null, 2) + '\n';
    const stamp = move.at.replace(/[^0-9TZ]/g, '');
    await this.store.put(`registry/${model}/alias-history/${alias}/${stamp}-${move.moveId.replace(/[^A-Za-z0-9_-]+/g, '-')}.json`, body, { contentType: 'application/json' });
    await this.store.put(`registry/${model}/aliases/${alias}.json`, body, { contentType: 'application/json' });
    return record;
  }

  /** Every move of `alias`, oldest first. */
  async aliasHistory(model: string, alias: AliasName): Promise<AliasRecord[]> {
    const out: AliasRecord[] = [];
    for await (const o of this.store.listAll(`registry/${model}/alias-history/${alias}/`)) out.push((await this.readJson<AliasRecord>(o.key))!);
    return out;
  }
}
