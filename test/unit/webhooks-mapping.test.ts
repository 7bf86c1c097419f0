import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GitCheckoutReader, parseRepoMap } from '../../src/adapters/git-checkout-reader';
import { GitHubContentsReader } from '../../src/adapters/github-contents-reader';
import { repoReaderFor } from '../../src/adapters/repo-reader';
import { ConfigError } from '../../src/ports/errors';
import { ForgelineYamlError, parseForgelineYaml, triggered } from '../../src/webhooks/forgeline-yaml';
import { webhookWorkflowId } from '../../src/webhooks/server';

const git = (dir: string, ...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=T', '-c', 'user.email=t@forgeline.invalid', ...args], { encoding: 'utf8' }).trim();

function problems(text: string): string[] {
  try {
    parseForgelineYaml(text);
  } catch (err) {
    assert.ok(err instanceof ForgelineYamlError, String(err));
    return err.problems;
  }
  return assert.fail('expected a ForgelineYamlError');
}

describe('webhooks: forgeline.yaml and the git checkout reader', function () {
  const file = parseForgelineYaml(`version: 1
lifecycles:
  - name: bot
    kind: model-release
    branches: [main, "release/*"]
    paths: ["training/**", "data/*.jsonl"]
    spec: releases/bot.json
  - kind: prompt-release
    branches: [main]
    paths: ["prompts/**"]
`);

  it('maps branch globs and changed-path globs to lifecycles, with the paths that matched', function () {
    const names = (branch: string, changed: string[]) => triggered(file, branch, changed).map((t) => `${t.name}:${t.paths.join('+')}`);
    assert.deepEqual(names('main', ['training/lora.yaml', 'prompts/a/b.txt', 'README.md']), ['bot:training/lora.yaml', 'prompt-release:prompts/a/b.txt']);
    assert.deepEqual(names('release/v2', ['data/train.jsonl', 'data/sub/x.jsonl', 'prompts/x.txt']), ['bot:data/train.jsonl']);
    assert.deepEqual(names('release/v2/hotfix', ['training/x']), [], '* does not cross /');
    assert.deepEqual(names('feature', ['training/x']), []);
    assert.deepEqual(names('main', ['docs/training/x']), []);
  });

  it('names the field path and line of every problem', function () {
    const found = problems(`version: 1
lifecycles:
  - kind: reembed
    branches: []
    paths: [corpus/**]
  - name: Bad Name
    kind: prompt-release
    branches: [main]
    paths: ["prompts/**"]
    spec: ../elsewhere.json
  - kind: prompt-release
    branches: [main]
    paths: ["prompts/**"]
`);
    const expected = [
      /^lifecycles\[0\]\.branches \(line 4\): expected at least one branch glob$/,
      /^lifecycles\[0\]\.spec \(line 3\): a reembed needs spec: the reembed spec file in the repository/,
      /^lifecycles\[1\]\.name \(line 6\): expected a name like support-bot/,
      /^lifecycles\[1\]\.spec \(line 10\): expected a path inside the repository/,
    ];
    for (const re of expected) assert.ok(found.some((p) => re.test(p)), `${re} in ${JSON.stringify(found)}`);
    assert.deepEqual(problems('version: 1\nlifecycles:\n  - kind: prompt-release\n    branches: [main]\n    paths: ["prompts/**"]\n  - kind: prompt-release\n    branches: [dev]\n    paths: ["p/**"]\n'), [
      'lifecycles[1].name (line 6): duplicate lifecycle name prompt-release (also lifecycles.[0]): give each a distinct name, it is part of the workflow ID',
    ]);
    assert.match(problems('version: 1\nlifecycles: [\n')[0]!, /^line \d+, column \d+: invalid YAML/);
    assert.deepEqual(problems('version: 2\nlifecycles: []\n'), ['version (line 1): expected version: 1', 'lifecycles (line 2): expected at least one lifecycle']);
  });

  it('workflow IDs: <name>/<repo>/<sha>, without characters Temporal users trip on', function () {
    assert.equal(webhookWorkflowId('bot', 'acme/models', 'a'.repeat(40)), `bot/acme/models/${'a'.repeat(40)}`);
    assert.equal(webhookWorkflowId('bot', 'acme/my repo?', 'abc1234'), 'bot/acme/my-repo-/abc1234');
  });

  it('FORGELINE_WEBHOOK_REPOS: repo=path pairs; a malformed one names itself and the fix', function () {
    assert.deepEqual([...parseRepoMap(' acme/models=/srv/m , group/sub/proj=/srv/p ,')], [
      ['acme/models', '/srv/m'],
      ['group/sub/proj', '/srv/p'],
    ]);
    assert.equal(parseRepoMap(undefined).size, 0);
    assert.throws(() => parseRepoMap('acme/models'), (e: Error) => e instanceof ConfigError && /"acme\/models" is not repo=path/.test(e.message));
    assert.throws(() => parseRepoMap('models=/srv/m'), ConfigError);
  });

  describe('GitCheckoutReader', function () {
    this.timeout(60_000);
    let origin: string;
    let clone: string;
    before(function () {
      origin = mkdtempSync(path.join(os.tmpdir(), 'forgeline-origin-'));
      clone = `${origin}-clone`;
      git(origin, 'init', '--quiet', '--initial-branch=main');
      writeFileSync(path.join(origin, 'forgeline.yaml'), 'version: 1\n');
      git(origin, 'add', '-A');
      git(origin, 'commit', '--quiet', '-m', 'one');
      execFileSync('git', ['clone', '--quiet', origin, clone]);
    });
    after(function () {
      rmSync(origin, { recursive: true, force: true });
      rmSync(clone, { recursive: true, force: true });
    });

    it('reads a file at the pushed commit, not the work tree, fetching a commit the clone does not have yet', async function () {
      writeFileSync(path.join(origin, 'forgeline.yaml'), 'version: 2\n');
      git(origin, 'commit', '--quiet', '-am', 'two');
      const first = git(origin, 'rev-parse', 'HEAD~1');
      const second = git(origin, 'rev-parse', 'HEAD');
      writeFileSync(path.join(clone, 'forgeline.yaml'), 'dirty work tree\n');
      const reader = new GitCheckoutReader(new Map([['acme/models', clone]]));
      assert.equal(reader.knows('acme/models'), true);
      assert.equal(reader.knows('acme/other'), false);
      assert.equal(await reader.readFile('acme/models', first, 'forgeline.yaml'), 'version: 1\n');
      assert.equal(await reader.readFile('acme/models', second, 'forgeline.yaml'), 'version: 2\n', 'fetched from origin');
      assert.equal(await reader.readFile('acme/models', second, 'missing.json'), undefined);
      await assert.rejects(reader.readFile('acme/models', 'f'.repeat(40), 'forgeline.yaml'), (e: Error) => e instanceof ConfigError && /does not have commit f{40}, even after git fetch/.test(e.message));
      await assert.rejects(reader.readFile('acme/models', 'HEAD', 'forgeline.yaml'), ConfigError);
    });
  });

  describe('GitHubContentsReader (wire format against a local endpoint)', function () {
    const sha = 'c'.repeat(40);
    let server: http.Server;
    let apiUrl: string;
    const seen: Array<{ url: string; headers: http.IncomingHttpHeaders }> = [];
    before(async function () {
      server = http.createServer((req, res) => {
        seen.push({ url: req.url ?? '', headers: req.headers });
        if (req.headers.authorization !== 'Bearer tok-123') return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"Bad credentials"}');
        if (req.url === `/api/v3/repos/acme/models/contents/releases/my%20bot.json?ref=${sha}`) return void res.writeHead(200, { 'content-type': 'application/vnd.github.raw' }).end('{"model":"bot"}');
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not Found"}');
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      apiUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v3/`;
    });
    after(function () {
      server.closeAllConnections();
      server.close();
    });

    it('GETs /repos/{owner}/{repo}/contents/{path}?ref=<sha> raw, with the token and API version; 404 is a missing file, 401 a ConfigError', async function () {
      const reader = new GitHubContentsReader({ repos: ['acme/models'], token: 'tok-123', apiUrl });
      assert.equal(await reader.readFile('acme/models', sha, 'releases/my bot.json'), '{"model":"bot"}');
      const req = seen.at(-1)!;
      assert.equal(req.headers.accept, 'application/vnd.github.raw+json');
      assert.equal(req.headers['x-github-api-version'], '2022-11-28');
      assert.equal(await reader.readFile('acme/models', sha, 'forgeline.yaml'), undefined);
      await assert.rejects(new GitHubContentsReader({ repos: ['acme/models'], token: 'wrong', apiUrl }).readFile('acme/models', sha, 'forgeline.yaml'), (e: Error) => e instanceof ConfigError && /GitHub API 401 .*FORGELINE_GITHUB_TOKEN/.test(e.message));
      await assert.rejects(reader.readFile('acme/other', sha, 'forgeline.yaml'), ConfigError);
    });

    it('FORGELINE_WEBHOOK_REPOS routes each repository to its checkout or to the API', async function () {
      const { reader, repos } = repoReaderFor({ webhook: { repos: 'acme/models=github,acme/local=/nonexistent', githubToken: 'tok-123', githubApiUrl: apiUrl, port: 1, host: 'x', bodyLimit: 1024 } });
      assert.deepEqual(repos, ['acme/models', 'acme/local']);
      assert.equal(reader.knows('acme/local'), true);
      assert.equal(reader.knows('acme/nope'), false);
      assert.equal(await reader.readFile('acme/models', sha, 'releases/my bot.json'), '{"model":"bot"}');
    });
  });
});
