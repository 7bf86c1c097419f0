/**
 * A VectorStore opened on first use. Workers hold one so that a store that cannot be opened (a
 * PostgreSQL server down, a PGlite directory another process holds) fails the re-embeds that need
 * it, with its error, and never keeps the worker, and the releases it runs, from starting. A
 * failed open is retried on the next call.
 */
import type { AliasRecord, QueryMatch, QueryOptions, QueryTarget, VectorRecord, VectorStore, VersionInfo, VersionSpec } from '../ports/vector-store';

export class LazyVectorStore implements VectorStore {
  private opening: Promise<VectorStore> | undefined;
  private opened: VectorStore | undefined;

  /** `name`: what the store is called until it is open (then its own label, e.g. `pgvector:pglite:/dir`). */
  constructor(private readonly name: string, private readonly open: () => Promise<VectorStore>) {}

  get label(): string {
    return this.opened?.label ?? this.name;
  }

  private store(): Promise<VectorStore> {
    this.opening ??= this.open().then(
      (s) => (this.opened = s),
      (err: unknown) => {
        this.opening = undefined;
        throw err;
      },
    );
    return this.opening;
  }

  async createVersion(index: string, version: string, spec: VersionSpec): Promise<void> {
    return (await this.store()).createVersion(index, version, spec);
  }
  async sealVersion(index: string, version: string): Promise<void> {
    const store = await this.store();
    await store.sealVersion?.(index, version);
  }
  async listVersions(index: string): Promise<VersionInfo[]> {
    return (await this.store()).listVersions(index);
  }
  async dropVersion(index: string, version: string): Promise<void> {
    return (await this.store()).dropVersion(index, version);
  }
  async upsert(index: string, version: string, records: readonly VectorRecord[]): Promise<void> {
    return (await this.store()).upsert(index, version, records);
  }
  async delete(index: string, version: string, ids: readonly string[]): Promise<void> {
    return (await this.store()).delete(index, version, ids);
  }
  async fetch(index: string, version: string, ids: readonly string[]): Promise<VectorRecord[]> {
    return (await this.store()).fetch(index, version, ids);
  }
  async existingIds(index: string, version: string, ids: readonly string[]): Promise<Set<string>> {
    return (await this.store()).existingIds(index, version, ids);
  }
  async count(index: string, version: string): Promise<number> {
    return (await this.store()).count(index, version);
  }
  async query(index: string, target: QueryTarget, vector: Float32Array | number[], options: QueryOptions): Promise<QueryMatch[]> {
    return (await this.store()).query(index, target, vector, options);
  }
  async getAlias(index: string, alias: string): Promise<AliasRecord | null> {
    return (await this.store()).getAlias(index, alias);
  }
  async swapAlias(index: string, alias: string, version: string, expected: string | null): Promise<AliasRecord> {
    return (await this.store()).swapAlias(index, alias, version, expected);
  }
  /** Closes the store if it was opened (waiting for an open in flight). */
  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    await this.opened?.close();
    this.opened = undefined;
    this.opening = undefined;
  }
}
