import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, redactConfig, REPO_ROOT } from '../../src/config/load';
import { ENV_BINDINGS, RENAMED_ENV } from '../../src/config/schema';
import { clientIdentity, connectionOptions } from '../../src/temporal/connection';
import { venvBin } from '../helpers/temporal';
import { configError } from '../helpers/failures';

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
    writeFileSync(path.join(dir, 'c.pem'), 'cert');
    assert.match(configError(() => loadConfig({ env: { TEMPORAL_TLS_CLIENT_CERT_PATH: 'c.pem' }, cwd: dir })), /TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH \(or their _DATA forms\) go together/);
  });

  it('redacts every secret binding when printed (a new secret without a sample here fails this test)', function () {
    const samples: Record<string, string> = {
      TEMPORAL_API_KEY: 'secret-temporal',
      TEMPORAL_TLS_CLIENT_KEY_DATA: 'secret-tls-key',
      WANDB_API_KEY: 'secret-wandb',
      FORGELINE_GATEWAY_ADMIN_TOKEN: 'secret-admin',
      FORGELINE_GATEWAY_KEYS: 'secretkey=team:1000',
      FORGELINE_GATEWAY_CLIENT_KEY: 'secret-client-key',
      FORGELINE_GATEWAY_REDIS_URL: 'redis://:secretpw@127.0.0.1:6379',
      FORGELINE_PG_URL: 'postgres://u:secretpg@127.0.0.1:5432/db',
      FORGELINE_WEAVIATE_API_KEY: 'secret-weaviate',
      FORGELINE_PINECONE_API_KEY: 'secret-pinecone',
      FORGELINE_MILVUS_TOKEN: 'u:secret-milvus',
      FORGELINE_QDRANT_API_KEY: 'secret-qdrant',
      FORGELINE_WEBHOOK_SECRET: 'secret-webhook-0123456789',
      FORGELINE_WEBHOOK_GITLAB_TOKEN: 'secret-gitlab-0123456789',
      FORGELINE_GITHUB_TOKEN: 'secret-github-token',
    };
    const secrets = ENV_BINDINGS.filter((b) => b.secret);
    assert.deepEqual(secrets.map((b) => b.env).filter((e) => !(e in samples)), [], 'every secret binding has a sample above');
    const cfg = loadConfig({ env: { ...samples, TEMPORAL_TLS_CLIENT_CERT_DATA: 'CERT', TEMPORAL_ADDRESS: 'h:7233' }, cwd: dir });
    const printed = JSON.stringify(redactConfig(cfg));
    assert.doesNotMatch(printed, /secret/);
    assert.equal(cfg.vectors.pgUrl, samples.FORGELINE_PG_URL, 'redaction copies');
  });

  it('turns TLS on for an API key (Temporal Cloud) and redacts it when printed', function () {
    const cfg = loadConfig({ env: { TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: 'k' }, cwd: dir });
    assert.equal(cfg.temporal.tls.enabled, true);
    assert.equal(redactConfig(cfg).temporal.apiKey, '<redacted>');
    assert.equal(cfg.temporal.apiKey, 'k', 'redaction copies');
  });

  it('reads Temporal\'s TLS variables and builds the connection from them with @temporalio/envconfig', function () {
    for (const [f, text] of [['client.pem', 'CERT'], ['client.key', 'KEY'], ['ca.pem', 'CA']]) writeFileSync(path.join(dir, f!), text!);
    const cfg = loadConfig({
      env: {
        TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233',
        TEMPORAL_TLS_CLIENT_CERT_PATH: path.join(dir, 'client.pem'),
        TEMPORAL_TLS_CLIENT_KEY_PATH: path.join(dir, 'client.key'),
        TEMPORAL_TLS_SERVER_CA_CERT_PATH: path.join(dir, 'ca.pem'),
        TEMPORAL_TLS_SERVER_NAME: 'ns.acct.tmprl.cloud',
      },
      cwd: dir,
    });
    assert.equal(cfg.temporal.tls.enabled, true, 'a client certificate implies TLS');
    const opts = connectionOptions(cfg);
    assert.equal(opts.address, 'ns.acct.tmprl.cloud:7233');
    assert.ok(opts.tls && typeof opts.tls === 'object');
    assert.equal(Buffer.from(opts.tls.clientCertPair!.crt).toString(), 'CERT');
    assert.equal(Buffer.from(opts.tls.clientCertPair!.key).toString(), 'KEY');
    assert.equal(Buffer.from(opts.tls.serverRootCACertificate!).toString(), 'CA');
    assert.equal(opts.tls.serverNameOverride, 'ns.acct.tmprl.cloud');
  });

  it('takes certificates as PEM text too (TEMPORAL_TLS_*_DATA), and redacts the key', function () {
    const cfg = loadConfig({ env: { TEMPORAL_TLS_CLIENT_CERT_DATA: 'CERT', TEMPORAL_TLS_CLIENT_KEY_DATA: 'KEY' }, cwd: dir });
    const tls = connectionOptions(cfg).tls;
    assert.ok(tls && typeof tls === 'object');
    assert.equal(Buffer.from(tls.clientCertPair!.key).toString(), 'KEY');
    assert.equal(redactConfig(cfg).temporal.tls.keyData, '<redacted>');
    writeFileSync(path.join(dir, 'c.pem'), 'x');
    assert.match(
      configError(() => loadConfig({ env: { TEMPORAL_TLS_CLIENT_CERT_PATH: 'c.pem', TEMPORAL_TLS_CLIENT_CERT_DATA: 'CERT', TEMPORAL_TLS_CLIENT_KEY_DATA: 'KEY' }, cwd: dir })),
      /TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_CERT_DATA .*both set/,
    );
  });

  it('names a missing certificate file by its variable', function () {
    const msg = configError(() => loadConfig({ env: { TEMPORAL_TLS_CLIENT_CERT_PATH: 'nope.pem', TEMPORAL_TLS_CLIENT_KEY_PATH: 'nope.key' }, cwd: dir }));
    assert.match(msg, /TEMPORAL_TLS_CLIENT_CERT_PATH="nope.pem": file not found/);
    assert.match(msg, /TEMPORAL_TLS_CLIENT_KEY_PATH="nope.key": file not found/);
  });

  it('stops at a renamed variable and names its replacement, so mTLS never silently goes without its certificate', function () {
    const msg = configError(() => loadConfig({ env: { TEMPORAL_TLS_CERT: 'c.pem', TEMPORAL_TLS_KEY: 'k.pem' }, cwd: dir }));
    assert.match(msg, /TEMPORAL_TLS_CERT is no longer read: rename it to TEMPORAL_TLS_CLIENT_CERT_PATH/);
    assert.match(msg, /TEMPORAL_TLS_KEY is no longer read: rename it to TEMPORAL_TLS_CLIENT_KEY_PATH/);
  });

  it('without an API key or TLS setting, connects in plain text; TEMPORAL_TLS=false wins over an API key', function () {
    assert.equal(connectionOptions(loadConfig({ env: {}, cwd: dir })).tls, false);
    assert.equal(connectionOptions(loadConfig({ env: {}, cwd: dir })).address, '127.0.0.1:7233');
    const cfg = loadConfig({ env: { TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' }, cwd: dir });
    assert.equal(connectionOptions(cfg).tls, false);
    assert.equal(connectionOptions(cfg).apiKey, 'k');
    assert.equal(connectionOptions(loadConfig({ env: { TEMPORAL_API_KEY: 'k' }, cwd: dir })).tls !== false, true, 'an API key implies TLS');
  });

  describe('Temporal client config file (temporal.toml profiles)', function () {
    const toml = (text: string) => {
      const file = path.join(dir, 'temporal.toml');
      writeFileSync(file, text);
      return file;
    };

    it('reads the default profile, or the one TEMPORAL_PROFILE names; environment variables win', function () {
      writeFileSync(path.join(dir, 'ca.pem'), 'CA');
      const file = toml(`
[profile.default]
address = "localhost:7233"
namespace = "dev"

[profile.cloud]
address = "prod.acct.tmprl.cloud:7233"
namespace = "prod.acct"
api_key = "from-file"
[profile.cloud.tls]
server_ca_cert_path = "${path.join(dir, 'ca.pem')}"

[profile.plain.tls]
disabled = true
server_name = "ignored.example"
`);
      const dflt = loadConfig({ env: { TEMPORAL_CONFIG_FILE: file }, cwd: dir });
      assert.equal(dflt.temporal.address, 'localhost:7233');
      assert.equal(dflt.temporal.namespace, 'dev');
      assert.equal(dflt.temporal.tls.enabled, false);

      const cloud = loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud' }, cwd: dir });
      assert.equal(cloud.temporal.address, 'prod.acct.tmprl.cloud:7233');
      assert.equal(cloud.temporal.apiKey, 'from-file');
      assert.equal(cloud.temporal.tls.enabled, true, 'a [tls] table turns TLS on');
      assert.equal(cloud.temporal.tls.caPath, path.join(dir, 'ca.pem'));

      const plain = loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'plain' }, cwd: dir });
      assert.equal(plain.temporal.tls.enabled, false, '`disabled = true` keeps TLS off');
      assert.equal(connectionOptions(plain).tls, false);

      const overridden = loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'cloud', TEMPORAL_NAMESPACE: 'other.acct', TEMPORAL_TLS: 'false' }, cwd: dir });
      assert.equal(overridden.temporal.namespace, 'other.acct');
      assert.equal(overridden.temporal.tls.enabled, false);
      assert.equal(overridden.temporal.address, 'prod.acct.tmprl.cloud:7233');
    });

    it('lets forgeline.config.json win over the profile, and relative TEMPORAL_CONFIG_FILE resolve against the working directory', function () {
      toml('[profile.default]\naddress = "a.example:7233"\nnamespace = "from-profile"\n');
      writeFileSync(path.join(dir, 'forgeline.config.json'), JSON.stringify({ temporal: { namespace: 'from-json' } }));
      const cfg = loadConfig({ env: { TEMPORAL_CONFIG_FILE: 'temporal.toml' }, cwd: dir });
      assert.equal(cfg.temporal.namespace, 'from-json');
      assert.equal(cfg.temporal.address, 'a.example:7233');
    });

    it('finds temporal.toml where the temporal CLI keeps it ($XDG_CONFIG_HOME/temporalio)', function () {
      mkdirSync(path.join(dir, 'xdg', 'temporalio'), { recursive: true });
      writeFileSync(path.join(dir, 'xdg', 'temporalio', 'temporal.toml'), '[profile.default]\nnamespace = "xdg"\n');
      assert.equal(loadConfig({ env: { XDG_CONFIG_HOME: path.join(dir, 'xdg') }, cwd: dir }).temporal.namespace, 'xdg');
    });

    it('reads a profile written by the temporal CLI itself (`temporal config set`)', function () {
      const file = path.join(dir, 'cli.toml');
      const set = (prop: string, value: string) =>
        execFileSync(venvBin('temporal'), ['config', 'set', '--profile', 'staging', '--prop', prop, '--value', value], { env: { ...process.env, TEMPORAL_CONFIG_FILE: file } });
      set('address', 'staging.example.com:7233');
      set('namespace', 'staging');
      set('tls.server_name', 'staging.example.com');
      const cfg = loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' }, cwd: dir });
      assert.equal(cfg.temporal.address, 'staging.example.com:7233');
      assert.equal(cfg.temporal.namespace, 'staging');
      assert.equal(cfg.temporal.tls.serverName, 'staging.example.com');
      assert.equal(cfg.temporal.tls.enabled, true);
    });

    it('names a bad profile value by its key, profile and file, in our error style', function () {
      const file = toml('[profile.default]\naddress = "no-port"\napi_key = "s3cret"\nnamespace = "bad namespace!"\n');
      const msg = configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: file }, cwd: dir }));
      assert.ok(msg.includes(`address="no-port" in profile 'default' of ${file} (or set TEMPORAL_ADDRESS): expected host:port`), msg);
      assert.ok(msg.includes(`namespace="bad namespace!" in profile 'default' of ${file} (or set TEMPORAL_NAMESPACE): expected a namespace name`), msg);
      assert.doesNotMatch(msg, /s3cret/);
    });

    it('takes an empty file (TEMPORAL_CONFIG_FILE=/dev/null) as no profiles', function () {
      const file = toml('');
      assert.equal(loadConfig({ env: { TEMPORAL_CONFIG_FILE: file }, cwd: dir }).temporal.address, undefined);
      assert.equal(loadConfig({ env: { TEMPORAL_CONFIG_FILE: '/dev/null' }, cwd: dir }).temporal.namespace, 'default');
      assert.match(configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' }, cwd: dir })), /TEMPORAL_PROFILE='prod': no such profile in .*temporal\.toml \(it has no profiles\)/);
    });

    it('explains an unknown profile, a misspelt key, broken TOML and a missing file', function () {
      const file = toml('[profile.default]\naddress = "localhost:7233"\n[profile.prod]\naddress = "p:7233"\n');
      assert.match(configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' }, cwd: dir })), /TEMPORAL_PROFILE='staging': no such profile in .*temporal\.toml \(it has 'default', 'prod'\)/);
      toml('[profile.default]\nadress = "localhost:7233"\n');
      assert.match(configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: file }, cwd: dir })), /Temporal config file .*temporal\.toml: key\(s\) unrecognized in profile\.default: adress/);
      toml('[profile.default\naddress = "x"\n');
      assert.match(configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: file }, cwd: dir })), /Temporal config file .*temporal\.toml: invalid TOML at line 1 column \d+/);
      assert.match(configError(() => loadConfig({ env: { TEMPORAL_CONFIG_FILE: 'gone.toml' }, cwd: dir })), /TEMPORAL_CONFIG_FILE='gone.toml': file not found/);
    });
  });

  it('identifies the CLI as `forgeline-cli <user>@<host>` in the histories it writes', function () {
    assert.equal(clientIdentity(), `forgeline-cli ${os.userInfo().username}@${os.hostname()}`);
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
    const renamed = Object.keys(RENAMED_ENV).filter((name) => !readme.includes(`\`${name}\``));
    assert.deepEqual(renamed, [], 'say in the README what these old names were renamed to');
  });
});
