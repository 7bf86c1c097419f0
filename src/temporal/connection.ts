import os from 'node:os';
import { Client, Connection } from '@temporalio/client';
import { toClientOptions, type ClientConfigProfile, type ConfigDataSource } from '@temporalio/envconfig';
import type { NativeConnection, NativeConnectionOptions } from '@temporalio/worker';
import type { ForgelineConfig } from '../config/schema';
import { clientTracingInterceptors } from '../observability/client-tracing';

/** The frontend address Forgeline talks to: TEMPORAL_ADDRESS, or the local dev server. */
export function temporalAddress(cfg: ForgelineConfig): string {
  return cfg.temporal.address ?? `127.0.0.1:${cfg.temporal.devPort}`;
}

function source(pathValue?: string, data?: string): ConfigDataSource | undefined {
  if (pathValue) return { path: pathValue };
  return data ? { data } : undefined;
}

/** The validated settings as a Temporal client profile, the shape @temporalio/envconfig turns into connection options. */
export function clientProfile(cfg: ForgelineConfig): ClientConfigProfile {
  const t = cfg.temporal.tls;
  const profile: ClientConfigProfile = {
    address: temporalAddress(cfg),
    namespace: cfg.temporal.namespace,
    tls: t.enabled
      ? { serverName: t.serverName, clientCert: source(t.certPath, t.certData), clientKey: source(t.keyPath, t.keyData), serverCACert: source(t.caPath, t.caData) }
      : { disabled: true },
  };
  if (cfg.temporal.apiKey) profile.apiKey = cfg.temporal.apiKey;
  return profile;
}

/** Connection options (address, TLS, API key) built the way Temporal's own tools build them. */
export function connectionOptions(cfg: ForgelineConfig): NativeConnectionOptions {
  return toClientOptions(clientProfile(cfg)).connectionOptions;
}

/**
 * Who a client is, as Temporal records it in every history event it causes (a start, an Update):
 * `forgeline-cli alice@build-host`. The user falls back to $USER where the OS has no name for it.
 */
export function clientIdentity(role = 'forgeline-cli'): string {
  let user: string | undefined;
  try {
    user = os.userInfo().username;
  } catch {
    user = undefined; // a uid without a passwd entry (some containers)
  }
  return `${role} ${user || process.env.USER || process.env.LOGNAME || 'unknown'}@${os.hostname()}`;
}

/** A client connection (for starting workflows, queries, updates, operator calls). */
export async function connectClient(cfg: ForgelineConfig, identity = clientIdentity()): Promise<{ connection: Connection; client: Client }> {
  const { address, tls, apiKey, metadata } = connectionOptions(cfg);
  const connection = await Connection.connect({ address, tls, apiKey, metadata, connectTimeout: '10s' });
  const interceptors = await clientTracingInterceptors(cfg);
  return { connection, client: new Client({ connection, namespace: cfg.temporal.namespace, identity, ...(interceptors ? { interceptors } : {}) }) };
}

/** A worker connection (the Rust core's). The worker SDK loads only here, so the CLI starts faster. */
export async function connectWorker(cfg: ForgelineConfig): Promise<NativeConnection> {
  const { NativeConnection } = await import('@temporalio/worker');
  return NativeConnection.connect(connectionOptions(cfg));
}
