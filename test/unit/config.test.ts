import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, redactConfig, REPO_ROOT } from '../../src/config/load';
import { ENV_BINDINGS } from '../../src/config/schema';
import { ConfigError } from '../../src/ports/errors';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

describe('config (one zod schema for environment and file)', function () {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-cfg-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('runs on embedded defaults: local Temporal, local artifacts under FORGELINE_HOME, local tracker, pool cpu', function () {
    const cfg = loadConfig({ env: {}, cwd: dir });
    assert.equal(cfg.home, path.join(dir, '.forgeline'));
    assert.equal(cfg.temporal.address, undefined);
    assert.equal(cfg.temporal.devPort, 7233);
    assert.equal(cfg.temporal.uiPort, 8233);
    assert.equal(cfg.artifacts.uri, `file://${dir}/.forgeline/artifacts`);
    assert.equal(cfg.tracker.kind, 'local');
    assert.deepEqual(cfg.gpu, { pool: 'cpu', count: 1 });
    assert.equal(cfg.venv, path.join(REPO_ROOT, '.venv'));
  });

  it('names every bad variable, its value and what is allowed, in one error', function () {
    const msg = configError(() =>
      loadConfig({ env: { FORGELINE_GPU_COUNT: '0', FORGELINE_UI_PORT: '99999', TEMPORAL_ADDRESS: 'no-port', FORGELINE_S3_FORCE_PATH_STYLE: 'maybe' }, cwd: dir }),
    );
    assert.match(msg, /FORGELINE_GPU_COUNT="0": expected at least 1/);
    assert.match(msg, /FORGELINE_UI_PORT="99999": expected a port in 1\.\.65535/);
    assert.match(msg, /TEMPORAL_ADDRESS="no-port": expected host:port/);
    assert.match(msg, /FORGELINE_S3_FORCE_PATH_STYLE="maybe": expected true or false/);
  });

  it('never prints a secret in an error', function () {
    const msg = configError(() => loadConfig({ env: { TEMPORAL_API_KEY: 'x', TEMPORAL_ADDRESS: 'ns.tmprl.cloud:7233', WANDB_BASE_URL: 'not a url', FORGELINE_TRACKER: 'wandb', WANDB_API_KEY: 'sekrit' }, cwd: dir }));
    assert.match(msg, /WANDB_BASE_URL/);
    assert.doesNotMatch(msg, /sekrit/);
  });

  it('requires WANDB_API_KEY with the W&B tracker, and cert + key together', function () {
    assert.match(configError(() => loadConfig({ env: { FORGELINE_TRACKER: 'wandb' }, cwd: dir })), /WANDB_API_KEY is required when FORGELINE_TRACKER=wandb/);
    assert.match(configError(() => loadConfig({ env: { TEMPORAL_TLS_CERT: 'c.pem' }, cwd: dir })), /TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together/);
  });

  it('turns TLS on for an API key (Temporal Cloud) and redacts it when printed', function () {
    const cfg = loadConfig({ env: { TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: 'k' }, cwd: dir });
    assert.equal(cfg.temporal.tls.enabled, true);
    assert.equal(redactConfig(cfg).temporal.apiKey, '<redacted>');
    assert.equal(cfg.temporal.apiKey, 'k', 'redaction copies');
  });

  it('reads forgeline.config.json, lets the environment win, and names the file in errors', function () {
    writeFileSync(path.join(dir, 'forgeline.config.json'), JSON.stringify({ gpu: { pool: 'h200', count: 8 }, artifacts: { uri: 's3://models/forgeline' } }));
    const cfg = loadConfig({ env: { FORGELINE_GPU_COUNT: '2' }, cwd: dir });
    assert.deepEqual(cfg.gpu, { pool: 'h200', count: 2 });
    assert.equal(cfg.artifacts.uri, 's3://models/forgeline');
    writeFileSync(path.join(dir, 'forgeline.config.json'), JSON.stringify({ gpu: { pool: 'H200!' } }));
    assert.match(configError(() => loadConfig({ env: {}, cwd: dir })), /gpu\.pool="H200!" in .*forgeline\.config\.json \(or set FORGELINE_GPU_POOL\): expected a lowercase pool name/);
  });

  it('explains a missing or broken config file', function () {
    assert.match(configError(() => loadConfig({ env: { FORGELINE_CONFIG: 'nope.json' }, cwd: dir })), /FORGELINE_CONFIG='nope.json': file not found/);
    writeFileSync(path.join(dir, 'forgeline.config.json'), '{ not json');
    assert.match(configError(() => loadConfig({ env: {}, cwd: dir })), /forgeline\.config\.json is not valid/);
  });

  it('documents every variable in the README configuration table', function () {
    const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const missing = ENV_BINDINGS.map((b) => b.env).filter((name) => !readme.includes(`| \`${name}\``));
    assert.deepEqual(missing, [], 'add these rows to the README configuration table');
  });
});
