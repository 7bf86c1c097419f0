import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { TLSConfig } from '@temporalio/client';
import type { ForgelineConfig } from '../config/schema';

/** The frontend address Forgeline talks to: TEMPORAL_ADDRESS, or the local dev server. */
export function temporalAddress(cfg: ForgelineConfig): string {
  return cfg.temporal.address ?? `127.0.0.1:${cfg.temporal.devPort}`;
}

function tlsConfig(cfg: ForgelineConfig): TLSConfig | boolean {
  const t = cfg.temporal.tls;
  if (!t.enabled) return false;
  const tls: TLSConfig = {};
  if (t.serverName) tls.serverNameOverride = t.serverName;
  if (t.caPath) tls.serverRootCACertificate = readFileSync(t.caPath);
  if (t.certPath && t.keyPath) tls.clientCertPair = { crt: readFileSync(t.certPath), key: readFileSync(t.keyPath) };
  return Object.keys(tls).length ? tls : true;
}

function connectionOptions(cfg: ForgelineConfig): ConnectionOptions & NativeConnectionOptions {
  const opts: ConnectionOptions & NativeConnectionOptions = { address: temporalAddress(cfg), tls: tlsConfig(cfg) };
  if (cfg.temporal.apiKey) opts.apiKey = cfg.temporal.apiKey;
  return opts;
}

/** A client connection (for starting workflows, queries, updates, operator calls). */
export async function connectClient(cfg: ForgelineConfig): Promise<{ connection: Connection; client: Client }> {
  const connection = await Connection.connect({ ...connectionOptions(cfg), connectTimeout: '10s' });
  return { connection, client: new Client({ connection, namespace: cfg.temporal.namespace }) };
}

/** A worker connection (the Rust core's). */
export function connectWorker(cfg: ForgelineConfig): Promise<NativeConnection> {
  return NativeConnection.connect(connectionOptions(cfg));
}
