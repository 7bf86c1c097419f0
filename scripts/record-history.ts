/**
 * Record workflow histories for the replay tests (test/replay/histories/<name>.json).
 *
 *   npm run record-history                         # run every scenario in test/replay/scenarios.ts
 *                                                   # on a throwaway dev server and record it
 *   npm run record-history -- --only stack-check-succeeded
 *   npm run record-history -- --workflow-id <id> --name <file-name>
 *                                                   # fetch a real history from the configured
 *                                                   # cluster (TEMPORAL_ADDRESS or local dev server)
 *
 * Recorded histories are the compatibility contract: a workflow change that replays them with a
 * determinism error needs workflow versioning (patched()), not a re-recording.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker } from '@temporalio/worker';
import { loadConfig, REPO_ROOT } from '../src/config/load';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../src/contracts/search-attributes';
import { gpuTaskQueue } from '../src/contracts/task-queues';
import { connectClient } from '../src/temporal/connection';
import { runMain } from '../src/cli/run-main';
import { SCENARIOS } from '../test/replay/scenarios';

const OUT_DIR = path.join(REPO_ROOT, 'test', 'replay', 'histories');

function write(name: string, json: string): void {
  mkdirSync(OUT_DIR, { recursive: true });
  const file = path.join(OUT_DIR, `${name}.json`);
  writeFileSync(file, JSON.stringify(JSON.parse(json), null, 1) + '\n');
  console.log(`recorded ${path.relative(process.cwd(), file)}`);
}

async function fetchFromCluster(workflowId: string, name: string): Promise<void> {
  const cfg = loadConfig();
  const { connection, client } = await connectClient(cfg);
  try {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    write(name, historyToJSON(history));
  } finally {
    await connection.close();
  }
}

async function recordScenarios(only?: string): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const cfg = loadConfig();
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: path.join(cfg.venv, 'bin', 'temporal') },
      searchAttributes: [...FORGELINE_SEARCH_ATTRIBUTES],
    },
  });
  try {
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows'), logger: new DefaultLogger('WARN') });
    for (const s of SCENARIOS.filter((x) => !only || x.name === only)) {
      const taskQueue = `record-${s.name}`;
      const workflowId = `replay/${s.name}`;
      const workers = [await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle, activities: s.control })];
      if (s.gpu) workers.push(await Worker.create({ connection: env.nativeConnection, taskQueue: gpuTaskQueue(s.gpu.pool), activities: s.gpu.activities }));
      const run = () => s.start(env.client, { taskQueue, workflowId });
      await workers.reduce<() => Promise<unknown>>((inner, w) => () => w.runUntil(inner), run)();
      write(s.name, historyToJSON(await env.client.workflow.getHandle(workflowId).fetchHistory()));
    }
  } finally {
    await env.teardown();
  }
}

runMain(async () => {
  const { values } = parseArgs({ options: { 'workflow-id': { type: 'string' }, name: { type: 'string' }, only: { type: 'string' } } });
  if (values['workflow-id']) {
    await fetchFromCluster(values['workflow-id'], values.name ?? values['workflow-id'].replace(/[^A-Za-z0-9_-]+/g, '-'));
  } else {
    await recordScenarios(values.only);
  }
});
