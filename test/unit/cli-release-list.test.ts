import assert from 'node:assert/strict';
import { formatReleaseTable, parseReleaseListOptions, releaseListQuery, type ReleaseListRow } from '../../src/cli/release-list';
import { UsageError } from '../../src/cli/errors';

describe('forgeline release list (options, visibility query, table)', function () {
  it('builds the visibility query from the filters: releases only', function () {
    assert.equal(releaseListQuery({}), 'ForgelineLifecycle = "release"');
    const { filter, limit } = parseReleaseListOptions({ model: 'support-bot', outcome: 'promoted', awaitingApproval: true, limit: '5' });
    assert.equal(limit, 5);
    assert.equal(
      releaseListQuery(filter),
      'ForgelineLifecycle = "release" AND ForgelineModel = "support-bot" AND ForgelineOutcome = "Promoted" AND ForgelineAwaitingApproval = true',
    );
    assert.equal(parseReleaseListOptions({}).limit, 20);
  });

  it('refuses bad options naming the option and the fix (no query is ever built from them)', function () {
    const refused = (opts: Parameters<typeof parseReleaseListOptions>[0], re: RegExp) =>
      assert.throws(() => parseReleaseListOptions(opts), (e: unknown) => e instanceof UsageError && re.test(e.message));
    refused({ model: 'x" OR ForgelineModel != "' }, /^--model .*expected a model alias like support-bot/);
    refused({ outcome: 'Done' }, /^--outcome "Done": expected one of Running, Candidate, Promoted, RolledBack, Rejected, Aborted, Failed$/);
    refused({ limit: '0' }, /^--limit 0: expected a whole number from 1 to 1000$/);
    refused({ limit: 'all' }, /^--limit all/);
  });

  it('prints a table, one release a line, or says that none match', function () {
    assert.deepEqual(formatReleaseTable([]), ['no releases match']);
    const row: ReleaseListRow = {
      releaseId: 'release/support-bot/3f2a1c9',
      model: 'support-bot',
      outcome: 'Running',
      stage: 'approval',
      awaitingApproval: true,
      decidedBy: null,
      gitSha: '3f2a1c9',
      execution: 'RUNNING',
      startTime: '2026-12-03T07:00:00.123Z',
      closeTime: null,
    };
    const lines = formatReleaseTable([row, { ...row, releaseId: 'release/x/1', model: 'x', outcome: 'Promoted', stage: 'done', awaitingApproval: false, decidedBy: 'alice@example.com' }]);
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^RELEASE\s+MODEL\s+OUTCOME\s+STAGE\s+STARTED\s+DECIDED BY$/);
    assert.match(lines[1]!, /^release\/support-bot\/3f2a1c9\s+support-bot\s+Running\s+approval \(awaiting approval\)\s+2026-12-03T07:00:00Z$/);
    assert.match(lines[2]!, /^release\/x\/1\s+x\s+Promoted\s+done\s+2026-12-03T07:00:00Z\s+alice@example\.com$/);
    assert.equal(lines[1]!.indexOf('support-bot '), lines[0]!.indexOf('MODEL'), 'columns line up');
  });
});
