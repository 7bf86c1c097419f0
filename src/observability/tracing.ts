import { hostname } from 'node:os';
import type { Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { makeWorkflowExporter, OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor } from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { ClientInterceptors } from '@temporalio/client';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import type { OpenTelemetryWorkflowExporter } from '@temporalio/interceptors-opentelemetry/lib/workflow/definitions';
import type { ForgelineConfig } from '../config/schema';
import { tracingMode } from './client-tracing';

/** Where spans go: an OTLP/HTTP collector (Jaeger, Grafana Tempo, an OpenTelemetry Collector), stdout, or nowhere. */
export type TracingMode = 'otlp' | 'console' | 'off';

/**
 * The workflow-side interceptors (workflow, outbound, internals spans). They run inside the
 * workflow sandbox, so they must be part of the workflow bundle: `createWorker` passes this to
 * Worker.create when it bundles `workflows/`, and a prebuilt bundle must be made with it
 * (`bundleWorkflowCode({ workflowInterceptorModules: [OTEL_WORKFLOW_INTERCEPTORS] })`).
 */
export const OTEL_WORKFLOW_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

export { tracingMode };

export interface Tracing {
  tracer: Tracer;
  /** For Worker.create: activity spans (continuing the workflow's trace), workflow spans from the bundle, and spans of workflows the worker's activities start. */
  workerInterceptors: Required<Pick<WorkerInterceptors, 'activity' | 'workflowModules' | 'client'>>;
  /** For Worker.create: the sink through which the workflow sandbox hands its finished spans to the exporter. */
  sinks: InjectedSinks<{ exporter: OpenTelemetryWorkflowExporter }>;
  /** For a Client (the CLI): spans for starting, signalling and querying workflows, whose context workflows continue. */
  clientInterceptors: ClientInterceptors;
  /** Flush what is buffered and stop exporting. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** `service.name` of the spans, e.g. forgeline-control-worker. */
  serviceName: string;
  mode: Exclude<TracingMode, 'off'>;
  /** Replace the exporter (tests: an in-memory exporter behind a SimpleSpanProcessor). */
  spanProcessor?: SpanProcessor;
}

function defaultProcessor(mode: TracingOptions['mode']): SpanProcessor {
  // The OTLP exporter reads the standard OTEL_EXPORTER_OTLP_ENDPOINT / _TRACES_ENDPOINT / _HEADERS itself.
  return mode === 'otlp' ? new BatchSpanProcessor(new OTLPTraceExporter()) : new SimpleSpanProcessor(new ConsoleSpanExporter());
}

/**
 * OpenTelemetry tracing through Temporal's interceptors: a client's start becomes the parent of
 * the workflow's spans, and every activity's span is a child of the workflow that scheduled it.
 */
export function createTracing(opts: TracingOptions): Tracing {
  const resource = new Resource({ 'service.name': opts.serviceName, 'host.name': hostname(), 'process.pid': process.pid });
  const spanProcessor = opts.spanProcessor ?? defaultProcessor(opts.mode);
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  // The W3C trace-context propagator and an AsyncLocalStorage context manager, process-wide: the
  // interceptors carry the trace in Temporal headers through them (without, every activity would
  // start a trace of its own). A second registration in one process keeps the first's.
  provider.register();
  const tracer = provider.getTracer('forgeline');
  const clientInterceptors: ClientInterceptors = { workflow: [new OpenTelemetryWorkflowClientInterceptor({ tracer })] };
  return {
    tracer,
    workerInterceptors: {
      activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }), outbound: new OpenTelemetryActivityOutboundInterceptor(ctx) })],
      workflowModules: [OTEL_WORKFLOW_INTERCEPTORS],
      client: clientInterceptors,
    },
    sinks: { exporter: makeWorkflowExporter(spanProcessor, resource) },
    clientInterceptors,
    shutdown: () => provider.shutdown(),
  };
}

/** Tracing as configured, or none (FORGELINE_TRACING=off, or neither it nor OTEL_EXPORTER_OTLP_ENDPOINT set). */
export function tracingFromConfig(cfg: Pick<ForgelineConfig, 'observability'>, serviceName: string): Tracing | undefined {
  const mode = tracingMode(cfg);
  return mode === 'off' ? undefined : createTracing({ serviceName, mode });
}
