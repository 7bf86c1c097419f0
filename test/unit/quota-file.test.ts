import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';
import { LeaseRequestSchema, poolQuotas, temporalPriority } from '../../src/contracts/quota';
import { loadQuotaFile, parseQuotaFile, QuotaFileError } from '../../src/fleet/quota-file';

function problems(text: string): string[] {
  try {
    parseQuotaFile(text, 'quotas.yaml');
  } catch (err) {
    assert.ok(err instanceof QuotaFileError, String(err));
    assert.equal(err.terminal, true);
    assert.match(err.message, /^invalid quota file quotas\.yaml: /);
    return err.problems;
  }
  return assert.fail('expected the file to be refused');
}

const VALID = `version: 1
pools:
  h200:
    gpus: 8
teams:
  search:
    priority: 100
    quotas:
      h200: { nominal: 4, borrowingLimit: 2 }
  research:
    quotas:
      h200: { nominal: 3, lendingLimit: 1 }
`;

describe('quota file (YAML + zod: field path, line and fix)', function () {
  it('parses a valid file with defaults: priority 0, cohort default, limits null, weight from nominal', function () {
    const f = parseQuotaFile(VALID, 'q.yaml');
    assert.deepEqual(f.teams.research, { priority: 0, cohort: 'default', quotas: { h200: { nominal: 3, borrowingLimit: null, lendingLimit: 1 } } });
    const q = poolQuotas(f, 'h200');
    assert.equal(q.gpus, 8);
    assert.deepEqual(q.teams.search, { team: 'search', cohort: 'default', priority: 100, weight: 4, nominal: 4, borrowingLimit: 2, lendingLimit: null });
    assert.equal(q.teams.research!.weight, 3);
    assert.throws(() => poolQuotas(f, 'a100'), /pool a100 is not in the quota file \(pools: h200\)/);
  });

  it('temporalPriority: fairness key = team, weight from the quota, priority key by rank (1 = first)', function () {
    const q = poolQuotas(parseQuotaFile(VALID, 'q.yaml'), 'h200');
    assert.deepEqual(temporalPriority(q, 'search'), { priorityKey: 1, fairnessKey: 'search', fairnessWeight: 4 });
    assert.deepEqual(temporalPriority(q, 'research'), { priorityKey: 2, fairnessKey: 'research', fairnessWeight: 3 });
    assert.throws(() => temporalPriority(q, 'ads'), /team ads has no quota on pool h200/);
  });

  it('a team with no nominal quota on a pool weighs 1; an explicit weight wins', function () {
    const f = parseQuotaFile(`version: 1\npools: {h200: {gpus: 2}}\nteams:\n  a: {weight: 2.5, quotas: {h200: {nominal: 1}}}\n  b: {quotas: {h200: {nominal: 0, borrowingLimit: 2}}}\n`, 'q.yaml');
    const q = poolQuotas(f, 'h200');
    assert.equal(q.teams.a!.weight, 2.5);
    assert.equal(q.teams.b!.weight, 1);
  });

  it('examples/quotas.yaml is valid', async function () {
    const f = await loadQuotaFile(path.join(REPO_ROOT, 'examples', 'quotas.yaml'));
    assert.deepEqual(Object.keys(f.pools), ['h200', 'cpu']);
    assert.equal(readFileSync(path.join(REPO_ROOT, 'examples', 'quotas.yaml'), 'utf8').includes('version: 1'), true);
  });

  it('a missing file names the path', async function () {
    await assert.rejects(loadQuotaFile('/nonexistent/quotas.yaml'), (err: unknown) => err instanceof QuotaFileError && /\(ENOENT\): check the path/.test(err.message));
  });

  it('malformed YAML: line and column', function () {
    assert.deepEqual(problems('version: 1\npools:\n  h200: {gpus: 8\n'), [problems('version: 1\npools:\n  h200: {gpus: 8\n')[0]]);
    assert.match(problems('version: 1\npools:\n  h200: {gpus: 8\n')[0]!, /^line \d+, column \d+: invalid YAML/);
    assert.match(problems('version: 1\nversion: 1\n')[0]!, /^line 2, column 1: invalid YAML \(Map keys must be unique/);
  });

  it('names each bad field with its line and the fix', function () {
    const cases: Array<[string, RegExp]> = [
      ['pools: {h200: {gpus: 8}}\nteams: {a: {quotas: {h200: {nominal: 1}}}}\n', /^version \(line 1\): expected version: 1$/],
      ['version: 2\npools: {h200: {gpus: 8}}\nteams: {a: {quotas: {}}}\n', /^version \(line 1\): expected version: 1$/],
      ['version: 1\npools: {h200: {gpus: 0}}\nteams: {a: {quotas: {}}}\n', /^pools\.h200\.gpus \(line 2\): expected a pool of at least 1 GPU$/],
      ['version: 1\npools: {h200: {gpus: 2.5}}\nteams: {a: {quotas: {}}}\n', /^pools\.h200\.gpus \(line 2\): expected gpus as a whole number of GPUs$/],
      ['version: 1\npools: {h200: {gpus: 8, cohort: x}}\nteams: {a: {quotas: {}}}\n', /^pools\.h200 \(line 2\): Unrecognized key: "cohort"$/],
      ['version: 1\npools: {H200: {gpus: 8}}\nteams: {a: {quotas: {}}}\n', /^pools\.H200 \(line 2\): expected a lowercase pool name/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams: {Search: {quotas: {}}}\n', /^teams\.Search \(line 3\): expected a lowercase team name/],
      ['version: 1\npools: {}\nteams: {a: {quotas: {}}}\n', /^pools \(line 2\): expected at least one pool/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams: {}\n', /^teams \(line 3\): expected at least one team$/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams:\n  a:\n    priority: high\n    quotas: {}\n', /^teams\.a\.priority \(line 5\): expected priority as a whole number \(higher wins\)/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams:\n  a:\n    weight: 0\n    quotas: {}\n', /^teams\.a\.weight \(line 5\): expected weight as a positive number/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams:\n  a:\n    quotas:\n      h200: {nominal: -1}\n', /^teams\.a\.quotas\.h200\.nominal \(line 6\): expected nominal of 0 or more GPUs$/],
      ['version: 1\npools: {h200: {gpus: 8}}\nteams:\n  a:\n    quotas:\n      h200: {nominal: 1, borowingLimit: 2}\n', /^teams\.a\.quotas\.h200 \(line 6\): Unrecognized key: "borowingLimit"$/],
    ];
    for (const [text, re] of cases) {
      const ps = problems(text);
      assert.equal(ps.length, 1, `${text}\n${ps.join('\n')}`);
      assert.match(ps[0]!, re, text);
    }
  });

  it('cross-checks: unknown pools, nominal sums above the pool, limits above what exists', function () {
    const text = `version: 1
pools:
  h200:
    gpus: 8
teams:
  search:
    quotas:
      h200: { nominal: 6, borrowingLimit: 4 }
      a100: { nominal: 1 }
  research:
    quotas:
      h200: { nominal: 4, lendingLimit: 5 }
`;
    assert.deepEqual(problems(text), [
      'teams.search.quotas.h200.borrowingLimit (line 8): nominal 6 + borrowingLimit 4 is more than pool h200\'s 8 GPUs: lower it',
      'teams.search.quotas.a100 (line 9): unknown pool a100: declare it under pools (known: h200) or remove this quota',
      'teams.research.quotas.h200.lendingLimit (line 12): lendingLimit 5 is above nominal 4: a team lends at most its own nominal GPUs; lower it or set null',
      'pools.h200.gpus (line 4): the teams\' nominal quotas of pool h200 add up to 10 GPUs (search 6, research 4), more than its 8: lower them or raise gpus',
    ]);
  });

  it('lease requests: defaults and named problems', function () {
    const ok = LeaseRequestSchema.parse({ leaseId: 'l1', team: 'search', pool: 'h200', gpus: 2, holder: { workflowId: 'release/m/abc', stage: 'train' } });
    assert.equal(ok.priority, 0);
    assert.equal(ok.preemptible, true);
    const bad = LeaseRequestSchema.safeParse({ leaseId: 'l1', team: 'Search', pool: 'h200', gpus: 0, holder: { workflowId: 'w', stage: 'train' } });
    assert.equal(bad.success, false);
    assert.deepEqual(bad.error!.issues.map((i) => i.path.join('.')), ['team', 'gpus']);
  });
});
