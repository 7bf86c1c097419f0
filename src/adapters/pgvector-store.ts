/**
 * pgvector behind the VectorStore port: one SQL implementation, two drivers.
 * - PGlite (`@electric-sql/pglite` with the pgvector extension `@electric-sql/pglite-pgvector`):
 *   the embedded default, a WASM PostgreSQL persisting under a directory
 *   (`${FORGELINE_HOME}/vectors`). One process at a time may open a directory; within a process,
 *   stores and registries opened on the same directory share one PGlite.
 * - `pg`: a real PostgreSQL server with the `vector` extension (FORGELINE_PG_URL).
 *
 * Layout, in the connection's default schema:
 * - `forgeline_vector_versions`: the catalog, one row per (index, version) with its width, metric
 *   and table.
 * - one table per (index, version), `fl_<index>__<version>` (a hashed name when that would be
 *   ambiguous or longer than PostgreSQL's 63-byte identifiers): `id text primary key,
 *   embedding vector(N), metadata jsonb`, with an HNSW index using the metric's operator class
 *   (vector_cosine_ops / vector_ip_ops / vector_l2_ops).
 * - `forgeline_vector_aliases`: the AliasRegistry (exported as SqlAliasRegistry for the stores
 *   without native aliases, e.g. Pinecone): one row per (store, index, alias), moved by a
 *   conditional UPDATE (or INSERT ... ON CONFLICT DO NOTHING for a first swap), with a generation
 *   that grows by one at every move.
 *
 * Catalog changes (create, drop, swap) take a transaction-scoped advisory lock, so a swap to a
 * version and that version's drop cannot interleave. Queries by alias read the pointer, then the
 * version's table: a query sees one version, never a mix. Queries use HNSW with iterative scans
 * in strict order (pgvector >= 0.8), so a filtered query still finds `topK` matches when they
 * exist. Every value reaches SQL as a bind parameter; only validated names become identifiers.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool, PoolClient } from 'pg';
import {
  AliasConflictError,
  VectorStoreRejectedError,
  type AliasRecord,
  type AliasRegistry,
  type Metadata,
  type Metric,
  type QueryMatch,
  type QueryOptions,
  type QueryTarget,
  type VectorRecord,
  type VectorStore,
  type VersionInfo,
  type VersionSpec,
} from '../ports/vector-store';
import { checkFilter, checkIds, checkName, checkRecords, checkSpec, checkTopK, checkVector, chunk } from './vector-store-common';

// ---- drivers --------------------------------------------------------------------------------

/** What the store needs from a connection: parameterised queries returning rows. */
export interface SqlQueryable {
  query<R extends object>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface SqlDatabase extends SqlQueryable {
  /** e.g. `pglite:/home/me/.forgeline/vectors` or `postgres://db.example:5432/app` (no password). */
  readonly label: string;
  /** Runs `fn` in one transaction on one connection (COMMIT on success, ROLLBACK on a throw). */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** HNSW build and search parameters. */
export interface HnswSettings {
  m: number;
  efConstruction: number;
  efSearch: number;
}

/**
 * pgvector's build defaults (m 16, ef_construction 64); ef_search 100 rather than its 40: on
 * 100k × 384 clustered vectors recall@10 goes from 0.89 to 0.97 for about 1 ms more per query
 * (bench/vector-stores.ts).
 */
export const DEFAULT_HNSW: HnswSettings = { m: 16, efConstruction: 64, efSearch: 100 };

/** The session settings every connection gets (ef_search, iterative scan in strict order). */
function sessionSettings(hnsw: HnswSettings): string {
  return `SET hnsw.ef_search = ${Math.trunc(hnsw.efSearch)}; SET hnsw.iterative_scan = strict_order`;
}

/** The part of PGlite used here (the package's ESM and CJS typings differ in private fields). */
interface PGlite {
  query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }>;
  exec(sql: string): Promise<unknown>;
  transaction<T>(fn: (tx: { query<R>(sql: string, params?: unknown[]): Promise<{ rows: R[] }> }) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

function startupOptions(hnsw: HnswSettings): string {
  return `-c hnsw.ef_search=${Math.trunc(hnsw.efSearch)} -c hnsw.iterative_scan=strict_order`;
}

interface SharedPglite {
  db: Promise<PGlite>;
  users: number;
}
/** One PGlite per directory per process: two instances on one directory would corrupt it. */
const pglites = new Map<string, SharedPglite>();

/** A PGlite database under `dir` (created if absent), with pgvector loaded. */
/** Who holds a PGlite directory: `<dir>.lock` holds this, written with O_EXCL. */
interface PgliteOwner {
  pid: number;
  host: string;
  since: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes `<dir>.lock` for this process: PGlite has no locking of its own, and two processes on one
 * directory corrupt it. A lock whose process is gone (same host) is taken over; a live holder is
 * waited for up to `waitMs` (a CLI opening the store right after a worker stopped), then refused.
 */
export async function lockPgliteDir(dir: string, waitMs: number): Promise<() => Promise<void>> {
  const lock = `${dir}.lock`;
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const handle = await open(lock, 'wx');
      const owner: PgliteOwner = { pid: process.pid, host: os.hostname(), since: new Date().toISOString() };
      await handle.writeFile(JSON.stringify(owner));
      await handle.close();
      return () => unlink(lock).catch(() => undefined);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner: PgliteOwner | undefined;
    try {
      owner = JSON.parse(await readFile(lock, 'utf8')) as PgliteOwner;
    } catch {
      owner = undefined; // being written, or garbage: judged again below
    }
    if (owner && owner.host === os.hostname() && !alive(owner.pid)) {
      await unlink(lock).catch(() => undefined); // its process is gone
      continue;
    }
    if (Date.now() >= deadline) {
      const who = owner ? `process ${owner.pid} on ${owner.host} (since ${owner.since})` : 'another process';
      throw new VectorStoreRejectedError(
        `pgvector:pglite:${dir}`,
        `the directory is open in ${who}; PGlite allows one process per directory: stop that process, or use FORGELINE_VECTOR_STORE=postgres for several processes (remove ${lock} only if that process is really gone)`,
      );
    }
    await sleep(200);
  }
}

export async function openPgliteDatabase(dir: string, hnsw: HnswSettings = DEFAULT_HNSW, options: { lockWaitMs?: number } = {}): Promise<SqlDatabase> {
  const key = path.resolve(dir);
  let shared = pglites.get(key);
  if (!shared) {
    const db = (async (): Promise<PGlite> => {
      await mkdir(key, { recursive: true });
      const unlock = await lockPgliteDir(key, options.lockWaitMs ?? 15_000);
      try {
        const [{ PGlite }, { vector }] = await Promise.all([import('@electric-sql/pglite'), import('@electric-sql/pglite-pgvector')]);
        const pg = await PGlite.create(key, { extensions: { vector } });
        await pg.exec('CREATE EXTENSION IF NOT EXISTS vector');
        const close = pg.close.bind(pg);
        return Object.assign(pg, { close: async () => (await close(), await unlock()) });
      } catch (err) {
        await unlock();
        throw err;
      }
    })();
    shared = { db, users: 0 };
    pglites.set(key, shared);
    db.catch(() => pglites.delete(key));
  }
  const entry: SharedPglite = shared;
  entry.users++;
  let pg: PGlite;
  try {
    pg = await entry.db;
  } catch (err) {
    entry.users--;
    throw err;
  }
  // Session settings are per database here (one connection); the last opener's win.
  await pg.exec(sessionSettings(hnsw));
  let closed = false;
  return {
    label: `pglite:${key}`,
    async query<R extends object>(sql: string, params?: unknown[]) {
      return (await pg.query<R>(sql, params)).rows;
    },
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>) {
      return pg.transaction((tx) => fn({ query: async <R extends object>(sql: string, params?: unknown[]) => (await tx.query<R>(sql, params)).rows }));
    },
    async close() {
      if (closed) return;
      closed = true;
      if (--entry.users === 0) {
        pglites.delete(key);
        await pg.close();
      }
    },
  };
}

/** A connection pool to a PostgreSQL server with the `vector` extension available. */
export async function openPostgresDatabase(url: string, options: { hnsw?: HnswSettings; maxConnections?: number } = {}): Promise<SqlDatabase> {
  const { Pool } = await import('pg');
  const hnsw = options.hnsw ?? DEFAULT_HNSW;
  // Session settings as startup options: every connection has them from its first query.
  const pool: Pool = new Pool({ connectionString: url, max: options.maxConnections ?? 8, options: startupOptions(hnsw) });
  pool.on('error', () => undefined); // an idle client's connection dropped; the next checkout reconnects
  const database: SqlDatabase = {
    label: redactUrl(url),
    async query<R extends object>(sql: string, params?: unknown[]) {
      return (await pool.query(sql, params)).rows as R[];
    },
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>) {
      const client: PoolClient = await pool.connect();
      try {
        await client.query('BEGIN');
        const result = await fn({ query: async <R extends object>(sql: string, params?: unknown[]) => (await client.query(sql, params)).rows as R[] });
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (err) {
        // A connection that cannot even roll back is broken: release(err) closes it, not pools it.
        const broken = await client.query('ROLLBACK').then(
          () => false,
          () => true,
        );
        client.release(broken ? (err instanceof Error ? err : new Error(String(err))) : undefined);
        throw err;
      }
    },
    close: () => pool.end(),
  };
  // The extension must exist before the session settings can be checked; fail fast and clearly.
  try {
    await database.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
      await tx.query('CREATE EXTENSION IF NOT EXISTS vector');
    });
  } catch (err) {
    await pool.end().catch(() => undefined);
    if (isSqlError(err, '0A000') || isSqlError(err, '58P01')) {
      throw new VectorStoreRejectedError(
        `pgvector:${database.label}`,
        `the server has no pgvector extension (${(err as Error).message}); install pgvector on it (https://github.com/pgvector/pgvector) or use FORGELINE_VECTOR_STORE=pglite`,
      );
    }
    throw err;
  }
  return database;
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres:(unparsable url)';
  }
}

function isSqlError(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

// ---- alias registry -------------------------------------------------------------------------

const ALIASES = 'forgeline_vector_aliases';
const VERSIONS = 'forgeline_vector_versions';
/** Advisory lock keys (any fixed bigints; ours start with the bytes of "flvs"). */
const SCHEMA_LOCK = '7380954950227001';
const CATALOG_LOCK = '7380954950227002';

interface AliasRow {
  alias: string;
  version: string;
  generation: number | string;
  moved_ms: number;
}

const ALIAS_COLUMNS = `alias, version, generation, (extract(epoch FROM moved_at) * 1000)::float8 AS moved_ms`;

function toAliasRecord(row: AliasRow): AliasRecord {
  return { alias: row.alias, version: row.version, generation: Number(row.generation), movedAt: new Date(row.moved_ms).toISOString() };
}

async function ensureAliasTable(db: SqlQueryable): Promise<void> {
  await db.query(
    `CREATE TABLE IF NOT EXISTS ${ALIASES} (
       store text NOT NULL, index_name text NOT NULL, alias text NOT NULL,
       version text NOT NULL, generation bigint NOT NULL, moved_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (store, index_name, alias))`,
  );
}

async function getAliasRow(db: SqlQueryable, store: string, index: string, alias: string): Promise<AliasRecord | null> {
  const [row] = await db.query<AliasRow>(`SELECT ${ALIAS_COLUMNS} FROM ${ALIASES} WHERE store = $1 AND index_name = $2 AND alias = $3`, [store, index, alias]);
  return row ? toAliasRecord(row) : null;
}

/** The compare-and-swap itself, on `db` (a transaction when the caller needs one around it). */
async function swapAliasRow(db: SqlQueryable, label: string, store: string, index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
  if (expected !== version) {
    const rows =
      expected === null
        ? await db.query<AliasRow>(
            `INSERT INTO ${ALIASES} (store, index_name, alias, version, generation, moved_at) VALUES ($1, $2, $3, $4, 1, now())
             ON CONFLICT (store, index_name, alias) DO NOTHING RETURNING ${ALIAS_COLUMNS}`,
            [store, index, alias, version],
          )
        : await db.query<AliasRow>(
            `UPDATE ${ALIASES} SET version = $4, generation = generation + 1, moved_at = now()
             WHERE store = $1 AND index_name = $2 AND alias = $3 AND version = $5 RETURNING ${ALIAS_COLUMNS}`,
            [store, index, alias, version, expected],
          );
    if (rows[0]) return toAliasRecord(rows[0]);
  }
  // Not moved: either it already points at `version` (a retried swap), or someone else moved it.
  const current = await getAliasRow(db, store, index, alias);
  if (current && current.version === version) return current;
  throw new AliasConflictError(label, index, alias, expected, current?.version ?? null);
}

export type SqlLocation = { dir: string } | { url: string };

/**
 * AliasRegistry on a SQL table (PGlite directory or PostgreSQL URL), for stores that have no
 * native aliases. `swap` is one conditional statement, so it is atomic across processes.
 */
export class SqlAliasRegistry implements AliasRegistry {
  private constructor(
    private readonly db: SqlDatabase,
    private readonly ownsDb: boolean,
  ) {}

  static async open(location: SqlLocation): Promise<SqlAliasRegistry> {
    const db = 'dir' in location ? await openPgliteDatabase(location.dir) : await openPostgresDatabase(location.url, { maxConnections: 4 });
    try {
      return await SqlAliasRegistry.on(db, true);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  /** A registry on an open database; `owns`: close it with the registry. */
  static async on(db: SqlDatabase, owns = false): Promise<SqlAliasRegistry> {
    await db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
      await ensureAliasTable(tx);
    });
    return new SqlAliasRegistry(db, owns);
  }

  get label(): string {
    return this.db.label;
  }

  get(store: string, index: string, alias: string): Promise<AliasRecord | null> {
    return getAliasRow(this.db, store, index, alias);
  }

  swap(store: string, index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    return swapAliasRow(this.db, store, store, index, alias, version, expected);
  }

  async pointingAt(store: string, index: string, version: string): Promise<string[]> {
    const rows = await this.db.query<{ alias: string }>(`SELECT alias FROM ${ALIASES} WHERE store = $1 AND index_name = $2 AND version = $3 ORDER BY alias`, [
      store,
      index,
      version,
    ]);
    return rows.map((r) => r.alias);
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }
}

// ---- the store ------------------------------------------------------------------------------

const OPERATORS: Record<Metric, { opclass: string; operator: string; score: (distance: string) => string }> = {
  // <=> cosine distance (1 - similarity); <#> negative inner product; <-> L2 distance.
  cosine: { opclass: 'vector_cosine_ops', operator: '<=>', score: (d) => `1 - (${d})` },
  dot: { opclass: 'vector_ip_ops', operator: '<#>', score: (d) => `-(${d})` },
  euclidean: { opclass: 'vector_l2_ops', operator: '<->', score: (d) => `-(${d})` },
};

/** Rows per INSERT statement (3 array parameters each, so no bind-parameter limit applies). */
const UPSERT_BATCH = 500;
/** pgvector's limit for indexed vectors (HNSW on `vector` up to 2,000 dimensions). */
const MAX_DIMENSIONS = 2_000;
const MAX_TOP_K = 10_000;
/** The alias registry's `store` for this adapter's own aliases. */
const ALIAS_SCOPE = 'pgvector';

interface VersionRow {
  version: string;
  dimensions: number;
  metric: Metric;
  table_name: string;
}

/** The table of (index, version): readable when unambiguous and short, hashed otherwise. */
export function versionTable(index: string, version: string): string {
  const plain = `fl_${index}__${version}`;
  if (!index.includes('__') && !version.includes('__') && !index.endsWith('_') && !version.startsWith('_') && plain.length <= 63) return plain;
  const digest = createHash('sha256').update(`${index}\u0000${version}`).digest('hex').slice(0, 16);
  return `flh_${index.slice(0, 20)}_${version.slice(0, 20)}_${digest}`;
}

function vectorLiteral(values: readonly number[]): string {
  return `[${values.join(',')}]`;
}

function parseVector(text: string): number[] {
  return JSON.parse(text) as number[];
}

export interface PgvectorStoreOptions {
  hnsw?: HnswSettings;
  /**
   * Honour `VersionSpec.deferIndex`: create a version's HNSW index at `sealVersion`, over all its
   * rows, instead of at `createVersion` (then every insert maintains it). On by default for
   * PostgreSQL, where the build runs in the server; off for PGlite, where the build would hold the
   * worker's event loop (and its heartbeats) for minutes at a time on a large version.
   */
  deferIndexBuild?: boolean;
}

export class PgvectorStore implements VectorStore {
  readonly label: string;
  private readonly hnsw: HnswSettings;
  private readonly deferIndexBuild: boolean;

  private constructor(
    private readonly db: SqlDatabase,
    options: PgvectorStoreOptions,
  ) {
    this.label = `pgvector:${db.label}`;
    this.hnsw = options.hnsw ?? DEFAULT_HNSW;
    this.deferIndexBuild = options.deferIndexBuild ?? false;
  }

  /** The embedded store: PGlite under `dir`. */
  static async openPglite(dir: string, options: PgvectorStoreOptions = {}): Promise<PgvectorStore> {
    return PgvectorStore.on(await openPgliteDatabase(dir, options.hnsw), options);
  }

  /** A PostgreSQL server with pgvector, e.g. `postgres://user:pass@host:5432/db`. */
  static async openPostgres(url: string, options: PgvectorStoreOptions & { maxConnections?: number } = {}): Promise<PgvectorStore> {
    return PgvectorStore.on(await openPostgresDatabase(url, options), { deferIndexBuild: true, ...options });
  }

  /** A store on an open database (closed with the store); creates the catalog tables if absent. */
  static async on(db: SqlDatabase, options: PgvectorStoreOptions = {}): Promise<PgvectorStore> {
    try {
      await db.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
        await tx.query(
          `CREATE TABLE IF NOT EXISTS ${VERSIONS} (
             index_name text NOT NULL, version text NOT NULL, dimensions integer NOT NULL, metric text NOT NULL,
             table_name text NOT NULL UNIQUE, created_at timestamptz NOT NULL DEFAULT now(),
             PRIMARY KEY (index_name, version))`,
        );
        await ensureAliasTable(tx);
      });
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PgvectorStore(db, options);
  }

  private reject(message: string): VectorStoreRejectedError {
    return new VectorStoreRejectedError(this.label, message);
  }

  private async versionRow(db: SqlQueryable, index: string, version: string): Promise<VersionRow | undefined> {
    const [row] = await db.query<VersionRow>(`SELECT version, dimensions, metric, table_name FROM ${VERSIONS} WHERE index_name = $1 AND version = $2`, [index, version]);
    return row;
  }

  /** The version's row, or a rejection naming it and the fix. */
  private async existing(index: string, version: string): Promise<VersionRow> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    const row = await this.versionRow(this.db, index, version);
    if (!row) throw this.reject(`${index}/${version} does not exist; create it with createVersion first`);
    return row;
  }

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    checkSpec(this.label, index, version, spec);
    if (spec.dimensions > MAX_DIMENSIONS) {
      throw this.reject(`${index}/${version}: dimensions ${spec.dimensions} exceeds pgvector's HNSW limit of ${MAX_DIMENSIONS} for the vector type`);
    }
    await this.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${CATALOG_LOCK})`);
      const row = await this.versionRow(tx, index, version);
      if (row) {
        if (row.dimensions !== spec.dimensions || row.metric !== spec.metric) {
          throw this.reject(
            `${index}/${version} exists with ${row.dimensions} dimensions and metric ${row.metric}, not ${spec.dimensions} and ${spec.metric}; create a new version for another model or metric`,
          );
        }
        return;
      }
      const table = versionTable(index, version);
      // Table and catalog row are created in one transaction, so a table of this name that is not
      // in the catalog is not ours: CREATE TABLE fails on it rather than touching it.
      await tx.query(`CREATE TABLE ${table} (id text PRIMARY KEY, embedding vector(${spec.dimensions}) NOT NULL, metadata jsonb NOT NULL DEFAULT '{}'::jsonb)`);
      if (!(spec.deferIndex && this.deferIndexBuild)) await this.buildIndex(tx, table, spec.metric);
      await tx.query(`INSERT INTO ${VERSIONS} (index_name, version, dimensions, metric, table_name) VALUES ($1, $2, $3, $4, $5)`, [
        index,
        version,
        spec.dimensions,
        spec.metric,
        table,
      ]);
    });
  }

  /** The version's HNSW index, if it has none yet (a build over all rows is 3-4x faster than row by row). */
  private async buildIndex(db: SqlQueryable, table: string, metric: Metric): Promise<void> {
    const { opclass } = OPERATORS[metric];
    const m = Math.trunc(this.hnsw.m);
    const efConstruction = Math.trunc(this.hnsw.efConstruction);
    await db.query(`CREATE INDEX IF NOT EXISTS ${table}_hnsw ON ${table} USING hnsw (embedding ${opclass}) WITH (m = ${m}, ef_construction = ${efConstruction})`);
  }

  /**
   * Build the HNSW index of a version created with `deferIndex` (idempotent: a version that has it
   * is left alone). One statement, so a build cut short by a crash rolls back and is redone.
   */
  async sealVersion(index: string, version: string): Promise<void> {
    const row = await this.existing(index, version);
    await this.buildIndex(this.db, row.table_name, row.metric);
  }

  async listVersions(index: string): Promise<VersionInfo[]> {
    checkName(this.label, 'index', index);
    const rows = await this.db.query<VersionRow>(`SELECT version, dimensions, metric FROM ${VERSIONS} WHERE index_name = $1 ORDER BY version`, [index]);
    return rows.map((r) => ({ version: r.version, dimensions: r.dimensions, metric: r.metric }));
  }

  async dropVersion(index: string, version: string): Promise<void> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'version', version);
    await this.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${CATALOG_LOCK})`);
      const row = await this.versionRow(tx, index, version);
      if (!row) return;
      const aliases = await tx.query<{ alias: string }>(`SELECT alias FROM ${ALIASES} WHERE store = $1 AND index_name = $2 AND version = $3 ORDER BY alias`, [
        ALIAS_SCOPE,
        index,
        version,
      ]);
      if (aliases.length > 0) {
        throw this.reject(
          `${index}/${version} is what alias ${aliases.map((a) => a.alias).join(', ')} points at; swap the alias to another version before dropping this one`,
        );
      }
      await tx.query(`DROP TABLE IF EXISTS ${row.table_name}`);
      await tx.query(`DELETE FROM ${VERSIONS} WHERE index_name = $1 AND version = $2`, [index, version]);
    });
  }

  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    const row = await this.existing(index, version);
    const checked = checkRecords(this.label, `${index}/${version}`, records, row.dimensions);
    if (checked.length === 0) return;
    const sql = `INSERT INTO ${row.table_name} (id, embedding, metadata)
      SELECT u.id, u.embedding::vector, u.metadata::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, embedding, metadata)
      ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding, metadata = EXCLUDED.metadata`;
    const write = async (db: SqlQueryable): Promise<void> => {
      for (const batch of chunk(checked, UPSERT_BATCH)) {
        await db.query(sql, [batch.map((r) => r.id), batch.map((r) => vectorLiteral(r.values)), batch.map((r) => JSON.stringify(r.metadata))]);
      }
    };
    // One call is all or nothing, so a retried call never finds half a batch.
    if (checked.length <= UPSERT_BATCH) await write(this.db);
    else await this.db.transaction(write);
  }

  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    const row = await this.existing(index, version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    if (unique.length === 0) return;
    await this.db.query(`DELETE FROM ${row.table_name} WHERE id = ANY($1::text[])`, [unique]);
  }

  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    const row = await this.existing(index, version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    if (unique.length === 0) return [];
    const rows = await this.db.query<{ id: string; embedding: string; metadata: Metadata }>(
      `SELECT id, embedding::text AS embedding, metadata FROM ${row.table_name} WHERE id = ANY($1::text[])`,
      [unique],
    );
    return rows.map((r) => ({ id: r.id, values: parseVector(r.embedding), metadata: r.metadata }));
  }

  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    const row = await this.existing(index, version);
    const unique = checkIds(this.label, `${index}/${version}`, ids);
    if (unique.length === 0) return new Set();
    const rows = await this.db.query<{ id: string }>(`SELECT id FROM ${row.table_name} WHERE id = ANY($1::text[])`, [unique]);
    return new Set(rows.map((r) => r.id));
  }

  async count(index: string, version: string): Promise<number> {
    const row = await this.existing(index, version);
    const [result] = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${row.table_name}`);
    return result?.n ?? 0;
  }

  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    checkName(this.label, 'index', index);
    const where = 'alias' in target ? `${index} alias ${target.alias}` : `${index}/${target.version}`;
    if ('alias' in target) checkName(this.label, 'alias', target.alias);
    else checkName(this.label, 'version', target.version);
    checkTopK(this.label, where, options, MAX_TOP_K);
    const conditions = checkFilter(this.label, where, options.filter);

    // An alias read just before a swap may name a version dropped right after: read it again.
    for (let attempt = 1; ; attempt++) {
      const row = await this.resolve(index, target);
      const values = checkVector(this.label, `${where} query`, vector, row.dimensions);
      const params: unknown[] = [vectorLiteral(values), options.topK];
      const predicates = conditions.map(([key, accepted]) => {
        // `metadata @> {"key": value}` for each accepted value: jsonb containment, typed equality.
        params.push(accepted.map((value) => JSON.stringify({ [key]: value })));
        return `metadata @> ANY($${params.length}::text[]::jsonb[])`;
      });
      const { operator, score } = OPERATORS[row.metric];
      const distance = `embedding ${operator} $1::vector`;
      const sql = `SELECT id, ${score(distance)} AS score, metadata FROM ${row.table_name}
        ${predicates.length > 0 ? `WHERE ${predicates.join(' AND ')}` : ''}
        ORDER BY ${distance} LIMIT $2`;
      try {
        const rows = await this.db.query<{ id: string; score: number; metadata: Metadata }>(sql, params);
        return rows.map((r) => ({ id: r.id, score: Number(r.score), metadata: r.metadata }));
      } catch (err) {
        if (attempt < 3 && 'alias' in target && isSqlError(err, '42P01')) continue;
        throw err;
      }
    }
  }

  private async resolve(index: string, target: QueryTarget): Promise<VersionRow> {
    if ('version' in target) return this.existing(index, target.version);
    const [row] = await this.db.query<VersionRow>(
      `SELECT v.version, v.dimensions, v.metric, v.table_name FROM ${ALIASES} a
       JOIN ${VERSIONS} v ON v.index_name = a.index_name AND v.version = a.version
       WHERE a.store = $1 AND a.index_name = $2 AND a.alias = $3`,
      [ALIAS_SCOPE, index, target.alias],
    );
    if (!row) throw this.reject(`alias ${index}/${target.alias} is not set; swap it to a version first (swapAlias with expected null)`);
    return row;
  }

  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    return getAliasRow(this.db, ALIAS_SCOPE, index, alias);
  }

  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    checkName(this.label, 'index', index);
    checkName(this.label, 'alias', alias);
    checkName(this.label, 'version', version);
    if (expected !== null) checkName(this.label, 'version', expected);
    return this.db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${CATALOG_LOCK})`);
      const row = await this.versionRow(tx, index, version);
      if (!row) {
        throw this.reject(`cannot point alias ${index}/${alias} at ${version}: that version does not exist; create and fill it first`);
      }
      // A version created with deferIndex whose seal never ran (a caller that stopped short) still
      // goes live indexed; for a sealed version this is a catalog lookup.
      await this.buildIndex(tx, row.table_name, row.metric);
      return swapAliasRow(tx, this.label, ALIAS_SCOPE, index, alias, version, expected);
    });
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
