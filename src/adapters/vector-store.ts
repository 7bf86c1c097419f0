/**
 * Builds the VectorStore a worker, the CLI or a benchmark uses from its configuration
 * (FORGELINE_VECTOR_STORE and each store's settings; see `vectors` in src/config/schema.ts).
 * One branch per store; adapters load their client libraries (pg, PGlite...) only when opened.
 */
import type { ForgelineConfig } from '../config/schema';
import { ConfigError } from '../ports/errors';
import type { VectorStore } from '../ports/vector-store';
import { PgvectorStore } from './pgvector-store';

export type VectorStoreConfig = ForgelineConfig['vectors'];

export async function createVectorStore(config: VectorStoreConfig): Promise<VectorStore> {
  switch (config.store) {
    case 'pglite': {
      return PgvectorStore.openPglite(config.dir);
    }
    case 'postgres': {
      if (!config.pgUrl) {
        throw new ConfigError('FORGELINE_VECTOR_STORE=postgres needs FORGELINE_PG_URL (postgres://user:password@host:5432/database, a server with the pgvector extension)');
      }
      return PgvectorStore.openPostgres(config.pgUrl);
    }
    // Each store's branch goes here: it checks its settings (a ConfigError naming the variable)
    // and imports its adapter.
    case 'pinecone':
    case 'qdrant':
    case 'weaviate':
    case 'milvus':
      throw new ConfigError(`FORGELINE_VECTOR_STORE=${config.store} is not available in this build yet; use pglite or postgres`);
    default: {
      const unknown: never = config.store;
      throw new ConfigError(`unknown FORGELINE_VECTOR_STORE ${JSON.stringify(unknown)}: expected pglite, postgres, pinecone, qdrant, weaviate or milvus`);
    }
  }
}
