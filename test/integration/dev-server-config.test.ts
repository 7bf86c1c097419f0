/**
 * Every dev server Forgeline starts (`forgeline dev`, the tests, the bench) lifts the history
 * shard's transfer-queue read budget (DEV_SERVER_DYNAMIC_CONFIG): at the default 20 reads/s each
 * workflow and non-eager activity dispatch waited for the next 50 ms slot, the 40 ms stall the
 * orchestration benchmark showed. How much it buys is measured there (npm run bench: our server
 * against `start-dev` defaults), not timed here.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { devServerDynamicConfigArgs, DEV_SERVER_DYNAMIC_CONFIG } from '../../src/temporal/dev-server';
import { getLocalEnv } from '../helpers/temporal';

/** Command lines (argv) of live `temporal server start-dev` processes. */
function devServerCommandLines(): string[][] {
  const out: string[][] = [];
  for (const pid of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes('start-dev')) out.push(argv);
    } catch {
      /* gone */
    }
  }
  return out;
}

describe('dev server configuration (real Temporal dev server)', function () {
  it('names the transfer-queue read budget as a start-dev flag', function () {
    assert.equal(DEV_SERVER_DYNAMIC_CONFIG['history.transferProcessorMaxPollRPS'], 1000);
    assert.deepEqual(devServerDynamicConfigArgs().slice(0, 2), ['--dynamic-config-value', 'history.transferProcessorMaxPollRPS=1000']);
    // Task-queue fairness (teams' GPU tasks): test/integration/task-queue-fairness.test.ts shows what it changes.
    assert.deepEqual(devServerDynamicConfigArgs().slice(2, 6), ['--dynamic-config-value', 'matching.useNewMatcher=true', '--dynamic-config-value', 'matching.enableFairness=true']);
  });

  it('the server the tests run on was started with it', async function () {
    const env = await getLocalEnv();
    const port = env.connection.options.address.split(':').pop()!;
    const server = devServerCommandLines().find((argv) => argv[argv.indexOf('--port') + 1] === port);
    assert.ok(server, `no start-dev process listening on port ${port}`);
    const i = server.indexOf('history.transferProcessorMaxPollRPS=1000');
    assert.ok(i > 0 && server[i - 1] === '--dynamic-config-value', `flag missing: ${server.join(' ')}`);
  });
});
