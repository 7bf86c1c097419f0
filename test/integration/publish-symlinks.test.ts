/**
 * publishDirectory does not follow a symbolic link out of the directory it publishes (a recipe's
 * output must not smuggle other files of the worker into the artifact store).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { LocalArtifactStore } from '../../src/adapters/local-artifact-store';

describe('publishDirectory and symbolic links (LocalArtifactStore)', function () {
  let dir: string;
  let store: LocalArtifactStore;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-symlinks-'));
    store = new LocalArtifactStore(pathToFileURL(path.join(dir, 'store')).href);
    writeFileSync(path.join(dir, 'secret.env'), 'AWS_SECRET_ACCESS_KEY=...');
    mkdirSync(path.join(dir, 'out', 'adapter'), { recursive: true });
    writeFileSync(path.join(dir, 'out', 'adapter', 'weights.bin'), 'w');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a link that leads out of the directory, naming it, and publishes nothing', async function () {
    symlinkSync(path.join(dir, 'secret.env'), path.join(dir, 'out', 'adapter', 'config.json'));
    await assert.rejects(store.publishDirectory(path.join(dir, 'out'), 'releases/r/adapter/'), /cannot publish .*out: adapter\/config\.json is a symbolic link to .*secret\.env, outside the directory/);
    assert.equal(await store.readManifest('releases/r/adapter/'), undefined);
    symlinkSync(dir, path.join(dir, 'out', 'up'));
    rmSync(path.join(dir, 'out', 'adapter', 'config.json'));
    await assert.rejects(store.publishDirectory(path.join(dir, 'out'), 'releases/r/adapter/'), /up is a symbolic link to .*, outside the directory/);
  });

  it('follows a link that stays inside the directory', async function () {
    symlinkSync('weights.bin', path.join(dir, 'out', 'adapter', 'model.safetensors'));
    const manifest = await store.publishDirectory(path.join(dir, 'out'), 'releases/r/adapter/');
    assert.deepEqual(manifest.files.map((f) => f.path), ['adapter/model.safetensors', 'adapter/weights.bin']);
  });
});
