import assert from 'node:assert/strict';
import { defaultPayloadConverter, type WorkflowHandle } from '@temporalio/client';
import { describeView, Output, PlainProgress, TtyProgress, type ReleaseView } from '../../src/cli/output';
import { watchRelease } from '../../src/cli/watch';
import type { ReleaseStatus, StageHeartbeat } from '../../src/contracts/release-lifecycle';

function sink(isTTY: boolean) {
  const s = { text: '', isTTY, columns: 120, write: (chunk: string) => ((s.text += chunk), true) };
  return s;
}

const ESC = '\x1b';
/** Until `pred` holds (a redraw happens on cli-progress's timer; a busy machine delays it). */
async function until(pred: () => boolean): Promise<void> {
  for (let i = 0; !pred(); i++) {
    if (i > 500) assert.fail('timed out waiting for a redraw');
    await new Promise((r) => setTimeout(r, 10));
  }
}
const training = (step: number, loss: number, checkpoint?: number): ReleaseView => ({
  workflowId: 'release/m/1',
  stage: 'train',
  attempt: 1,
  beat: { stage: 'train', step, totalSteps: 200, loss, ...(checkpoint !== undefined ? { checkpoint: { step: checkpoint, prefix: `ckpt/${checkpoint}/` } } : {}) },
});

describe('release watch rendering', function () {
  it('describes a view in one line: stage, step, loss, newest checkpoint, retries, what it waits for', function () {
    assert.equal(describeView({ ...training(120, 1.23456, 100), attempt: 2 }), '[train] step 120/200 loss 1.2346 checkpoint @100 [attempt 2]');
    assert.equal(describeView({ workflowId: 'w', stage: 'quantize', beat: { message: 'quantize: waiting for 1 GPU(s)' } }), '[quantize] quantize: waiting for 1 GPU(s)');
    assert.equal(
      describeView({ workflowId: 'release/m/1', stage: 'approval', awaitingApproval: true, approvalDeadline: '2026-12-02T12:00:00Z' }),
      '[approval] awaiting approval until 2026-12-02T12:00:00Z: forgeline release approve release/m/1 --by WHO --reason WHY',
    );
  });

  it('not a terminal: plain lines, one per change, no escape codes', function () {
    const out = sink(false);
    const p = new PlainProgress(out);
    p.update(training(50, 2.5));
    p.update(training(50, 2.5));
    p.update(training(100, 1.75, 100));
    p.log('[gpu-cpu] a worker line');
    p.stop();
    assert.equal(out.text, '  [train] step 50/200 loss 2.5000\n  [train] step 100/200 loss 1.7500 checkpoint @100\n[gpu-cpu] a worker line\n');
    assert.ok(!out.text.includes(ESC));
  });

  it('a terminal: one line redrawn in place with a bar for training steps; other output prints above it', async function () {
    const out = sink(true);
    const p = new TtyProgress(out, { fps: 50 });
    const exitListeners = process.listenerCount('exit');
    p.update(training(50, 2.5));
    assert.equal(process.listenerCount('exit'), exitListeners + 1, 'a process that ends while drawing gets its cursor back');
    await until(() => out.text.includes('step 50/200'));
    p.update(training(150, 1.25, 100));
    p.log('[gpu-cpu] a worker line');
    await until(() => out.text.includes('step 150/200'));
    p.stop();
    assert.equal(process.listenerCount('exit'), exitListeners);
    const text = out.text;
    assert.ok(text.includes(`${ESC}[?25l`) && text.includes(`${ESC}[?25h`), 'hides the cursor while drawing and shows it again');
    assert.match(text, /\[train\] █{6}░{18} step 50\/200 loss 2\.5000/, 'a quarter of the bar for step 50 of 200');
    assert.match(text, /\[train\] █{18}░{6} step 150\/200 loss 1\.2500 checkpoint @100/);
    assert.match(text, /\[gpu-cpu\] a worker line\n/);
    // In place: the two progress states share one line; only the logged line and the final newline end lines.
    assert.equal(text.split('\n').length - 1, 2, JSON.stringify(text));
  });

  it('Output sends log lines through the active progress and picks the renderer by isTTY', function () {
    const pipe = sink(false);
    const out = new Output(pipe, sink(false));
    const p = out.progress();
    p.update(training(10, 3));
    out.log('hello');
    p.stop();
    out.log('after');
    assert.equal(pipe.text, '  [train] step 10/200 loss 3.0000\nhello\nafter\n');
  });

  it('watchRelease follows a release by its status query and heartbeats until it closes', async function () {
    const beats: Array<StageHeartbeat | undefined> = [{ stage: 'train', step: 40, totalSteps: 200, loss: 2.1 }, { stage: 'train', step: 200, totalSteps: 200, loss: 0.9, checkpoint: { step: 200, prefix: 'ckpt/200/' } }, undefined];
    const statuses: Array<Partial<ReleaseStatus>> = [{ stage: 'train' }, { stage: 'train' }, { stage: 'approval', awaitingApproval: true }];
    let polls = 0;
    const handle = {
      workflowId: 'release/m/1',
      async describe() {
        const i = polls++;
        const beat = beats[i];
        return {
          status: { name: i < beats.length ? 'RUNNING' : 'COMPLETED' },
          raw: { pendingActivities: beat ? [{ activityType: { name: 'trainAdapter' }, attempt: 1, heartbeatDetails: { payloads: [defaultPayloadConverter.toPayload(beat)] } }] : [] },
        };
      },
      async query() {
        return { awaitingApproval: false, ...statuses[polls - 1] };
      },
    } as unknown as WorkflowHandle;
    const out = sink(false);
    let stopped = false;
    const plain = new PlainProgress(out);
    await watchRelease(handle, { update: (v) => plain.update(v), log: (l) => plain.log(l), stop: () => (stopped = true) }, 1);
    assert.equal(
      out.text,
      [
        '  [train] step 40/200 loss 2.1000',
        '  [train] step 200/200 loss 0.9000 checkpoint @200',
        '  [approval] awaiting approval: forgeline release approve release/m/1 --by WHO --reason WHY',
        '',
      ].join('\n'),
    );
    assert.ok(stopped, 'the progress display is stopped when the release closes');
  });
});
