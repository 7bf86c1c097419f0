import assert from 'node:assert/strict';
import { loadConfig } from '../../src/config/load';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { clientTracingInterceptors, tracingMode } from '../../src/observability/client-tracing';

const load = (env: NodeJS.ProcessEnv) => loadConfig({ env: { FORGELINE_CONFIG: '', TEMPORAL_CONFIG_FILE: '/dev/null', ...env } });

describe('observability config', function () {
  it('has no metrics endpoint and no tracing unless asked', function () {
    const cfg = load({});
    assert.equal(cfg.observability.metricsPort, undefined);
    assert.equal(cfg.observability.metricsHost, '0.0.0.0');
    assert.equal(tracingMode(cfg), 'off');
  });

  it('turns OTLP tracing on with OTEL_EXPORTER_OTLP_ENDPOINT, and FORGELINE_TRACING wins', function () {
    assert.equal(tracingMode(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318' })), 'otlp');
    assert.equal(tracingMode(load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318', FORGELINE_TRACING: 'off' })), 'off');
    assert.equal(tracingMode(load({ FORGELINE_TRACING: 'console' })), 'console');
    assert.equal(load({ FORGELINE_METRICS_PORT: '9464', FORGELINE_METRICS_HOST: '127.0.0.1' }).observability.metricsPort, 9464);
  });

  it('names the variable and the fix for bad values', function () {
    assert.throws(() => load({ FORGELINE_TRACING: 'jaeger' }), /FORGELINE_TRACING.*expected otlp, console or off/s);
    assert.throws(() => load({ FORGELINE_METRICS_PORT: 'ninety' }), /FORGELINE_METRICS_PORT/);
    assert.throws(() => load({ OTEL_EXPORTER_OTLP_ENDPOINT: 'localhost:4318' }), /OTEL_EXPORTER_OTLP_ENDPOINT.*expected a URL/s);
  });

  it('gives the CLI\'s client the tracing interceptor only when tracing is on', async function () {
    assert.equal(await clientTracingInterceptors(load({})), undefined);
    const interceptors = await clientTracingInterceptors(load({ FORGELINE_TRACING: 'console' }), 'forgeline-test-cli');
    assert.ok(interceptors?.workflow && Array.isArray(interceptors.workflow));
    assert.ok(interceptors.workflow[0] instanceof OpenTelemetryWorkflowClientInterceptor);
  });
});
