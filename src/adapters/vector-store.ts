/**
 * Builds the VectorStore a worker, the CLI or a benchmark uses from its configuration
 * (FORGELINE_VECTOR_STORE and each store's settings; see `vectors` in src/config/schema.ts).
 * One branch per store; adapters load their client libraries (pg, PGlite...) only when opened.
 */
import type { ForgelineConfig } from '../config/schema';
import { ConfigError } from '../ports/errors';
import type { VectorStore } from '../ports/vector-store';
import { PgvectorStore, SqlAliasRegistry } from './pgvector-store';
import { MilvusVectorStore } from './milvus-store';
import { PineconeVectorStore } from './pinecone-store';
import { QdrantVectorStore } from './qdrant-store';
import { WeaviateVectorStore } from './weaviate-store';

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
    case 'weaviate': {
      const { url, grpcUrl, apiKey } = config.weaviate ?? {};
      if (!url) {
        throw new ConfigError('FORGELINE_VECTOR_STORE=weaviate needs FORGELINE_WEAVIATE_URL (e.g. http://localhost:8080; gRPC defaults to its host on port 50051, or set FORGELINE_WEAVIATE_GRPC_URL)');
      }
      return WeaviateVectorStore.open({ url, ...(grpcUrl ? { grpcUrl } : {}), ...(apiKey ? { apiKey } : {}) });
    }
    case 'pinecone': {
      const { apiKey, host, project, cloud, region } = config.pinecone ?? {};
      if (!apiKey) throw new ConfigError('FORGELINE_VECTOR_STORE=pinecone needs FORGELINE_PINECONE_API_KEY (Pinecone console, API keys)');
      // Pinecone has no aliases: their rows live in the SQL registry, on PostgreSQL when
      // FORGELINE_PG_URL is set (several workers), else in PGlite under FORGELINE_VECTOR_DIR.
      const aliases = await SqlAliasRegistry.open(config.pgUrl ? { url: config.pgUrl } : { dir: config.dir });
      return new PineconeVectorStore({
        apiKey,
        aliases,
        ownsAliases: true,
        ...(host ? { controllerHostUrl: host } : {}),
        ...(project ? { project } : {}),
        ...(cloud ? { cloud } : {}),
        ...(region ? { region } : {}),
      });
    }
    case 'qdrant': {
      const { url, apiKey } = config.qdrant ?? {};
      if (!url) throw new ConfigError('FORGELINE_VECTOR_STORE=qdrant needs FORGELINE_QDRANT_URL (e.g. http://localhost:6333)');
      return new QdrantVectorStore({ url, ...(apiKey ? { apiKey } : {}) });
    }
    // Each store's branch goes here: it checks its settings (a ConfigError naming the variable)
    // and imports its adapter.
    case 'milvus': {
      const { address, token } = config.milvus ?? {};
      if (!address) throw new ConfigError('FORGELINE_VECTOR_STORE=milvus needs FORGELINE_MILVUS_ADDRESS (host:port of the Milvus proxy, e.g. 127.0.0.1:19530)');
      return new MilvusVectorStore({ address, ...(token ? { token } : {}) });
    }
    default: {
      const unknown: never = config.store;
      throw new ConfigError(`unknown FORGELINE_VECTOR_STORE ${JSON.stringify(unknown)}: expected pglite, postgres, pinecone, qdrant, weaviate or milvus`);
    }
  }
}
