import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { GitCheckoutReader } from '../../src/adapters/git-checkout-reader';
import { REPO_ROOT } from '../../src/config/load';
import { startWebhookServer, webhookWorkflowId, type WebhookServer } from '../../src/webhooks/server';
import { releaseSpec } from '../fixtures/release';
import { forgeline, tempHome } from '../helpers/processes';
import { getLocalEnv } from '../helpers/temporal';

const SECRET = 'github-secret-0123456789abcdef';
const GITLAB_TOKEN = 'gitlab-token-0123456789abcdef';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** POST with exactly these header lines (an array value sends the header once per element). */
function post(url: string, body: Buffer | string, headers: Record<string, string | string[]>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> });
        } catch {
          reject(new Error(`answer ${res.statusCode} is not JSON: ${text}`));
        }
      });
    });
    // The server may answer (413) and close before it has read the whole body: the write then fails, the answer stands.
    req.on('error', (err) => setTimeout(() => reject(err), 2000));
    req.end(body);
  });
}

const sign = (body: Buffer | string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
}

function commitFiles(dir: string, files: Record<string, string>, message: string): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  git(dir, 'add', '-A');
  git(dir, '-c', 'user.name=Forgeline Test', '-c', 'user.email=test@forgeline.invalid', 'commit', '--quiet', '-m', message);
  return git(dir, 'rev-parse', 'HEAD');
}

function githubPush(repo: string, sha: string, changed: string[], ref = 'refs/heads/main') {
  return JSON.stringify({
    ref,
    before: '0'.repeat(40),
    after: sha,
    created: false,
    deleted: false,
    forced: false,
    repository: { full_name: repo, name: repo.split('/')[1] },
    commits: [{ id: sha, added: [], modified: changed, removed: [] }],
  });
}

async function startInput(client: Client, workflowId: string): Promise<unknown> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  assert.ok(payload, `${workflowId} has a start input`);
  return defaultPayloadConverter.fromPayload(payload);
}

async function assertNotStarted(client: Client, workflowId: string): Promise<void> {
  await assert.rejects(client.workflow.getHandle(workflowId).describe(), WorkflowNotFoundError, `${workflowId} must not have started`);
}

describe('git push webhooks (real Temporal dev server, real git checkout)', function () {
  this.timeout(180_000);
  let client: Client;
  let server: WebhookServer;
  let dir: string;
  let sha: string;
  let badSha: string;
  let badSpecSha: string;
  const repo = `acme/models-${randomUUID().slice(0, 8)}`;
  const gitlabRepo = `group/sub/models-${randomUUID().slice(0, 8)}`;
  const taskQueue = `webhooks-${randomUUID()}`; // nothing polls it: started lifecycles wait there
  const started = new Set<string>();
  const logs: string[] = [];

  const github = (body: Buffer | string, headers: Record<string, string | string[]>) => post(`${server.url}/webhooks/github`, body, { 'x-github-delivery': randomUUID(), ...headers });
  const deliver = (body: string, event = 'push', delivery = randomUUID()) => post(`${server.url}/webhooks/github`, body, { 'x-github-event': event, 'x-github-delivery': delivery, 'x-hub-signature-256': sign(body) });
  const track = (a: Answer) => {
    for (const w of (a.body.workflows as Array<{ workflowId: string }> | undefined) ?? []) started.add(w.workflowId);
    return a;
  };

  before(async function () {
    client = (await getLocalEnv()).client;
    dir = mkdtempSync(path.join(os.tmpdir(), 'forgeline-webhooks-'));
    git(dir, 'init', '--quiet', '--initial-branch=main');
    sha = commitFiles(
      dir,
      {
        'forgeline.yaml': readFileSync(path.join(REPO_ROOT, 'examples', 'forgeline.yaml'), 'utf8'),
        'releases/support-bot.json': JSON.stringify({ ...releaseSpec({ model: 'support-bot' }), git: {} }, null, 2),
        'reembed/support-docs.json': JSON.stringify({ corpus: { name: 'support-docs', source: { folder: '/srv/docs' } }, store: { index: 'support_docs', alias: 'support_docs_live' } }),
        'training/config.yaml': 'lora_rank: 16\n',
        'prompts/greet.txt': 'Hello {{name}}\n',
        'corpus/faq.md': '# FAQ\n',
      },
      'lifecycles',
    );
    badSha = commitFiles(dir, { 'forgeline.yaml': 'version: 1\nlifecycles:\n  - kind: model-release\n    branches: [main]\n    paths: ["training/**"]\n  - kind: prompt-relase\n    branches: [main]\n    paths: ["prompts/**"]\n' }, 'broken forgeline.yaml');
    badSpecSha = commitFiles(
      dir,
      {
        'forgeline.yaml': readFileSync(path.join(REPO_ROOT, 'examples', 'forgeline.yaml'), 'utf8'),
        'releases/support-bot.json': JSON.stringify({ model: 'Support Bot!' }),
      },
      'broken release spec',
    );
    const checkouts = new Map([
      [repo, dir],
      [gitlabRepo, dir],
    ]);
    server = await startWebhookServer({ client, taskQueue, reader: new GitCheckoutReader(checkouts), githubSecret: SECRET, gitlabToken: GITLAB_TOKEN, log: (l) => logs.push(l) });
  });

  after(async function () {
    await server?.close();
    for (const id of started) await client.workflow.getHandle(id).terminate('webhook test done').catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers GET /healthz', async function () {
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
  });

  it('a signed push changing training files starts exactly one model release, of the pushed commit; redeliveries and a second push join it', async function () {
    const body = githubPush(repo, sha, ['training/config.yaml']);
    const delivery = randomUUID();
    const first = track(await deliver(body, 'push', delivery));
    assert.equal(first.status, 202, JSON.stringify(first.body));
    const id = webhookWorkflowId('support-bot', repo, sha);
    assert.equal(id, `support-bot/${repo}/${sha}`);
    assert.deepEqual(first.body.workflows, [{ name: 'support-bot', kind: 'model-release', workflowType: 'modelReleaseWorkflow', workflowId: id, paths: ['training/config.yaml'], duplicate: false }]);
    assert.equal(first.body.duplicate, false);

    const desc = await client.workflow.getHandle(id).describe();
    assert.equal(desc.type, 'modelReleaseWorkflow');
    assert.equal(desc.taskQueue, taskQueue);
    assert.equal(desc.status.name, 'RUNNING');
    const input = (await startInput(client, id)) as { model: string; git: { repo: string; ref: string; sha: string } };
    assert.equal(input.model, 'support-bot');
    assert.deepEqual(input.git, { repo, ref: 'refs/heads/main', sha });

    const again = await deliver(body, 'push', delivery); // GitHub's "Redeliver"
    const twice = await deliver(body); // the same commit pushed again, a new delivery
    for (const a of [again, twice]) {
      assert.equal(a.status, 202, JSON.stringify(a.body));
      assert.equal(a.body.duplicate, true);
      assert.deepEqual((a.body.workflows as Array<{ workflowId: string; duplicate: boolean }>).map((w) => [w.workflowId, w.duplicate]), [[id, true]]);
    }
    const after = await client.workflow.getHandle(id).describe();
    assert.equal(after.runId, desc.runId, 'still the one run the first delivery started');
    assert.ok(logs.some((l) => l.includes(`webhook delivery ${delivery}`)), 'the delivery id is logged');
  });

  it('prompts/** starts a prompt release and corpus/** a re-embed with the spec from the repository', async function () {
    const res = track(await deliver(githubPush(repo, sha, ['prompts/greet.txt', 'corpus/faq.md', 'README.md'])));
    assert.equal(res.status, 202, JSON.stringify(res.body));
    const byKind = Object.fromEntries((res.body.workflows as Array<{ kind: string; workflowId: string; workflowType: string }>).map((w) => [w.kind, w]));
    assert.deepEqual(Object.keys(byKind).sort(), ['prompt-release', 'reembed']);

    const prompt = byKind['prompt-release']!;
    assert.equal(prompt.workflowId, `prompt-release/${repo}/${sha}`);
    assert.equal((await client.workflow.getHandle(prompt.workflowId).describe()).type, 'promptReleaseWorkflow');
    assert.deepEqual(await startInput(client, prompt.workflowId), { repo, ref: 'refs/heads/main', sha, paths: ['prompts/greet.txt'] });

    const reembed = byKind.reembed!;
    assert.equal(reembed.workflowId, `support-docs/${repo}/${sha}`);
    assert.equal((await client.workflow.getHandle(reembed.workflowId).describe()).type, 'reembedCorpusWorkflow');
    assert.deepEqual(((await startInput(client, reembed.workflowId)) as { corpus: unknown }).corpus, { name: 'support-docs', source: { folder: '/srv/docs' } });
  });

  it('ignores (200) ping, other events, unmapped branches, paths no lifecycle names, tags and unknown repositories, starting nothing', async function () {
    const other = `acme/unknown-${randomUUID().slice(0, 8)}`;
    const cases: Array<[string, string, RegExp]> = [
      ['ping', JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 }), /ping events start nothing/],
      ['issues', JSON.stringify({ action: 'opened' }), /issues events start nothing/],
      ['push', githubPush(repo, badSpecSha, ['training/config.yaml'], 'refs/heads/feature/x'), /no lifecycle .* matches branch feature\/x/],
      ['push', githubPush(repo, badSpecSha, ['docs/index.md']), /no lifecycle .* matches/],
      ['push', githubPush(repo, badSpecSha, ['training/config.yaml'], 'refs/tags/v1'), /tag/],
      ['push', githubPush(other, badSpecSha, ['training/config.yaml']), /is not configured/],
    ];
    for (const [event, body, reason] of cases) {
      const res = await deliver(body, event);
      assert.equal(res.status, 200, `${event}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body.ignored, true);
      assert.match(String(res.body.reason), reason);
    }
    await assertNotStarted(client, `support-bot/${repo}/${badSpecSha}`);
  });

  it('refuses (401) a missing, wrong or duplicated signature, starting nothing', async function () {
    const body = githubPush(repo, badSha, ['training/config.yaml']);
    const cases: Array<[Record<string, string | string[]>, RegExp]> = [
      [{}, /missing X-Hub-Signature-256/],
      [{ 'x-hub-signature-256': sign(body, 'another-secret-0123456789') }, /does not match/],
      [{ 'x-hub-signature-256': sign(body + ' ') }, /does not match/],
      [{ 'x-hub-signature-256': sign(body).replace('sha256=', 'sha1=') }, /not sha256=/],
      [{ 'x-hub-signature-256': [sign(body), sign(body)] }, /more than one/],
      [{ 'x-hub-signature-256': [sign(body, 'another-secret-0123456789'), sign(body)] }, /more than one/],
    ];
    for (const [headers, message] of cases) {
      const res = await github(body, { 'x-github-event': 'push', ...headers });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.match(String(res.body.error), message);
    }
    await assertNotStarted(client, `support-bot/${repo}/${badSha}`);
  });

  it('refuses (400) truncated, non-JSON and incomplete payloads, even when signed', async function () {
    const full = githubPush(repo, sha, ['training/config.yaml']);
    const cases: Array<[string, RegExp]> = [
      [full.slice(0, full.length - 20), /not JSON/],
      ['payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D', /not JSON/],
      [JSON.stringify({ ref: 'refs/heads/main', repository: { full_name: repo }, commits: [], deleted: false }), /after: /],
      [JSON.stringify({ ...JSON.parse(full), repository: {} }), /repository.full_name/],
    ];
    for (const [body, message] of cases) {
      const res = await deliver(body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.match(String(res.body.error), message);
    }
  });

  it('refuses (413) a 10 MB body (over the 1 MiB default) and keeps serving', async function () {
    const body = Buffer.alloc(10 * 1024 * 1024, 'a');
    const res = await github(body, { 'x-github-event': 'push', 'x-hub-signature-256': sign(body) });
    assert.equal(res.status, 413);
    assert.match(String(res.body.error), /over the limit of 1048576 bytes/);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, 'still serving');
    assert.ok(logs.some((l) => /\/webhooks\/github: 413 body over the limit/.test(l)), 'the refused delivery is logged');
  });

  it('refuses (413) a chunked 10 MB body once it passes the limit', async function () {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${server.url}/webhooks/github`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked', 'x-github-event': 'push', 'x-hub-signature-256': sign('x') } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', (err) => setTimeout(() => reject(err), 2000));
      const chunk = Buffer.alloc(1024 * 1024, 'a');
      let sent = 0;
      const more = () => {
        while (sent < 10) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', more);
        }
        req.end();
      };
      more();
    });
    assert.equal(status, 413);
  });

  it('answers 422 naming field and line for a forgeline.yaml with errors, and for a bad spec file, starting nothing', async function () {
    const res = await deliver(githubPush(repo, badSha, ['training/config.yaml', 'prompts/greet.txt']));
    assert.equal(res.status, 422, JSON.stringify(res.body));
    assert.match(String(res.body.error), /^forgeline\.yaml: 2 problems/);
    assert.match(String(res.body.error), /lifecycles\[0\]\.spec \(line 3\): a model-release needs spec/);
    assert.match(String(res.body.error), /lifecycles\[1\]\.kind \(line 6\): expected one of model-release, prompt-release, reembed/);
    await assertNotStarted(client, `model-release/${repo}/${badSha}`);
    await assertNotStarted(client, `prompt-release/${repo}/${badSha}`);

    // A bad release spec stops the whole push: the prompt release it also triggers does not start either.
    const spec = await deliver(githubPush(repo, badSpecSha, ['training/config.yaml', 'prompts/greet.txt']));
    assert.equal(spec.status, 422, JSON.stringify(spec.body));
    assert.match(String(spec.body.error), /releases\/support-bot\.json: .*model/);
    await assertNotStarted(client, `support-bot/${repo}/${badSpecSha}`);
    await assertNotStarted(client, `prompt-release/${repo}/${badSpecSha}`);
  });

  it('GitLab: a push with the right X-Gitlab-Token starts the lifecycle; a wrong or missing token is refused', async function () {
    const body = JSON.stringify({
      object_kind: 'push',
      event_name: 'push',
      ref: 'refs/heads/main',
      before: '0'.repeat(40),
      after: sha,
      checkout_sha: sha,
      project: { path_with_namespace: gitlabRepo },
      commits: [{ id: sha, added: ['training/config.yaml'], modified: [], removed: [] }],
      total_commits_count: 1,
    });
    const url = `${server.url}/webhooks/gitlab`;
    const headers = { 'x-gitlab-event': 'Push Hook', 'x-gitlab-event-uuid': randomUUID() };
    for (const token of [undefined, 'wrong', GITLAB_TOKEN + 'x']) {
      const res = await post(url, body, { ...headers, ...(token === undefined ? {} : { 'x-gitlab-token': token }) });
      assert.equal(res.status, 401, JSON.stringify(res.body));
    }
    const id = `support-bot/${gitlabRepo}/${sha}`;
    await assertNotStarted(client, id);
    const ok = track(await post(url, body, { ...headers, 'x-gitlab-token': GITLAB_TOKEN }));
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    assert.deepEqual((ok.body.workflows as Array<{ workflowId: string }>).map((w) => w.workflowId), [id]);
    assert.equal((await client.workflow.getHandle(id).describe()).type, 'modelReleaseWorkflow');
    const again = await post(url, body, { ...headers, 'x-gitlab-token': GITLAB_TOKEN });
    assert.equal(again.body.duplicate, true);
    const ignored = await post(url, JSON.stringify({ object_kind: 'tag_push' }), { 'x-gitlab-event': 'Tag Push Hook', 'x-gitlab-token': GITLAB_TOKEN });
    assert.equal(ignored.status, 200);
    assert.equal(ignored.body.ignored, true);
  });
});

describe('forgeline webhook serve (the CLI, a real process)', function () {
  this.timeout(180_000);

  it('refuses to start without a secret (exit 2); serves /healthz and signed deliveries, and stops on SIGTERM', async function () {
    const env = await getLocalEnv();
    const home = tempHome('webhook-cli');
    const base = { TEMPORAL_ADDRESS: env.connection.options.address, FORGELINE_HOME: home.dir, FORGELINE_WEBHOOK_REPOS: `acme/models=${home.dir}` };
    try {
      const refused = forgeline(['webhook', 'serve', '--port', '0'], base);
      assert.equal(await refused.exited(), 2, refused.output());
      assert.match(refused.output(), /set FORGELINE_WEBHOOK_SECRET \(GitHub\) or FORGELINE_WEBHOOK_GITLAB_TOKEN/);

      const serve = forgeline(['webhook', 'serve', '--port', '0', '--host', '127.0.0.1'], { ...base, FORGELINE_WEBHOOK_SECRET: SECRET });
      try {
        const [, url] = await serve.waitFor(/receiver on (http:\/\/[^\s]+?): POST/);
        assert.equal((await fetch(`${url}/healthz`)).status, 200);
        const ping = JSON.stringify({ zen: 'Design for failure.', hook_id: 7 });
        const delivery = randomUUID();
        const res = await post(`${url}/webhooks/github`, ping, { 'x-github-event': 'ping', 'x-github-delivery': delivery, 'x-hub-signature-256': sign(ping) });
        assert.deepEqual([res.status, res.body.ignored], [200, true]);
        assert.equal((await post(`${url}/webhooks/github`, ping, { 'x-github-event': 'ping', 'x-hub-signature-256': sign(ping, 'not-the-secret-0123456789') })).status, 401);
        assert.equal((await post(`${url}/webhooks/gitlab`, ping, { 'x-gitlab-event': 'Push Hook', 'x-gitlab-token': 'anything-at-all-0123' })).status, 401, 'no GitLab token configured');
        await serve.waitFor(new RegExp(`webhook delivery ${delivery}`));
        serve.child.kill('SIGTERM');
        assert.equal(await serve.exited(), 0, serve.output());
      } finally {
        if (serve.child.exitCode === null && serve.child.signalCode === null) serve.child.kill('SIGKILL');
      }
    } finally {
      home.cleanup();
    }
  });
});
