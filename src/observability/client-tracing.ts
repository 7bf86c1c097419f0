import type { ClientInterceptors } from '@temporalio/client';
import type { ForgelineConfig } from '../config/schema';
import type * as TracingModule from './tracing';

/** FORGELINE_TRACING when set; otherwise `otlp` when OTEL_EXPORTER_OTLP_ENDPOINT is, else `off`. */
export function tracingMode(cfg: Pick<ForgelineConfig, 'observability'>): 'otlp' | 'console' | 'off' {
  return cfg.observability.tracing ?? (cfg.observability.otlpEndpoint ? 'otlp' : 'off');
}

/**
 * Client interceptors that trace the CLI's starts, signals, updates and queries (the workflow's
 * spans continue its trace), or none when tracing is off. OpenTelemetry loads only when tracing is
 * on, so the CLI starts as fast as before. Spans are flushed when the process has nothing left to
 * do (`beforeExit`).
 */
export async function clientTracingInterceptors(cfg: Pick<ForgelineConfig, 'observability'>, serviceName = 'forgeline-cli'): Promise<ClientInterceptors | undefined> {
  const mode = tracingMode(cfg);
  if (mode === 'off') return undefined;
  // A CommonJS require, not import(): Node would load a relative import() as ESM without the extension.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { createTracing } = require('./tracing') as typeof TracingModule;
  const tracing = createTracing({ serviceName, mode });
  process.once('beforeExit', () => void tracing.shutdown());
  return tracing.clientInterceptors;
}
