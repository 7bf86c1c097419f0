import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ErrorType } from '../../src/contracts/errors';
import { KubernetesJobConfigError, KubernetesJobRunner, type KubernetesJobRunnerOptions } from '../../src/adapters/kubernetes-job-runner';
import { KubernetesJobRunnerConfigSchema } from '../../src/config/kubernetes';
import { RecipeCrashedError, RecipeFailedError, RecipePreemptedError } from '../../src/adapters/recipe-run';
import type { RecipeEvent } from '../../src/ports/job-runner';
import { startKubeApiWireServer, type KubeApiWireServer, type PodScript } from '../helpers/kube-api-wire-server';

const ev = (o: Record<string, unknown>) => JSON.stringify(o);
const START = ev({ event: 'start', recipe: 'train', device: 'cuda', total_steps: 2 });
const PROGRESS = ev({ event: 'progress', step: 1, total_steps: 2, loss: 1.5 });
const RESULT = ev({ event: 'result', result: { final_loss: 0.5 } });

describe('KubernetesJobRunner (Kubernetes API wire endpoint, not a real cluster)', function () {
  this.timeout(30_000);
  let server: KubeApiWireServer;
  let dir: string;
  let kubeconfig: string;
  /** The pod script per Job, by the recipe's `--out` directory's last part. */
  const scripts = new Map<string, PodScript>();

  before(async () => {
    server = await startKubeApiWireServer((job) => {
      const args = (job as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!.args;
      return scripts.get(path.basename(args[args.indexOf('--out') + 1]!)) ?? {};
    });
    dir = await mkdtemp(path.join(os.tmpdir(), 'forgeline-kube-'));
    kubeconfig = path.join(dir, 'kubeconfig');
    await writeFile(kubeconfig, server.kubeconfig('forgeline'));
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(() => assert.deepEqual(server.violations, [], 'every request matched the API'));

  const runner = (extra: Partial<KubernetesJobRunnerOptions> = {}) =>
    new KubernetesJobRunner({
      ...KubernetesJobRunnerConfigSchema.parse({
        image: 'ghcr.io/acme/forgeline-recipes:1.4.0',
        kubeconfig,
        sharedVolume: { claimName: 'forgeline-home', mountPath: dir },
        pools: { h200: { nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H200' }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }], memory: '64Gi' } },
        ttlSecondsAfterFinished: 600,
      }),
      pool: 'h200',
      rewatchDelayMs: 50,
      ...extra,
    });
  let n = 0;
  const job = (script: PodScript, events: RecipeEvent[] = [], more: Record<string, unknown> = {}) => {
    const out = `job-${++n}`;
    scripts.set(out, script);
    return { recipe: 'train', input: { steps: 2, run: out }, outDir: path.join(dir, 'work', out), gpuIndices: [0, 1], onEvent: (e: RecipeEvent) => void events.push(e), ...more };
  };
  const createdFor = (out: string) => [...server.created.values()].find((j) => JSON.stringify(j).includes(`/work/${out}"`)) as { metadata: { name: string; labels: Record<string, string>; ownerReferences?: unknown[] }; spec: Record<string, unknown> & { template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[] } } } };

  it('creates a Job (batch/v1, GPUs, pool scheduling, labels, input Secret), streams its events and resolves with the result', async () => {
    const events: RecipeEvent[] = [];
    const spec = job({ lines: [START, 'loading weights', PROGRESS, RESULT] }, events, { env: { WANDB_API_KEY: 'secret-key' } });
    const result = await runner().run(spec);
    assert.deepEqual(result, { final_loss: 0.5 });
    assert.deepEqual(events.map((e) => e.event), ['start', 'progress', 'result']);
    const created = createdFor('job-1');
    assert.match(created.metadata.name, /^fl-train-[0-9a-f]{16}$/);
    assert.equal(created.spec.backoffLimit, 0);
    assert.equal(created.spec.ttlSecondsAfterFinished, 600);
    const pod = created.spec.template.spec;
    assert.equal(pod.restartPolicy, 'Never');
    assert.deepEqual(pod.nodeSelector, { 'nvidia.com/gpu.product': 'NVIDIA-H200' });
    assert.deepEqual(pod.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    const container = pod.containers[0] as { resources: { limits: Record<string, string> }; env: { name: string; value?: string; valueFrom?: unknown }[]; args: string[] };
    assert.equal(container.resources.limits['nvidia.com/gpu'], '2');
    assert.equal(container.resources.limits.memory, '64Gi');
    assert.equal(container.env.find((e) => e.name === 'CUDA_VISIBLE_DEVICES')?.value, '0,1');
    // A credential goes through the Secret, never into the Job's spec.
    assert.ok(!JSON.stringify(created).includes('secret-key'));
    assert.deepEqual(container.env.find((e) => e.name === 'WANDB_API_KEY')?.valueFrom, { secretKeyRef: { name: created.metadata.name, key: 'env.WANDB_API_KEY' } });
    assert.deepEqual(created.metadata.labels['forgeline.dev/pool'], 'h200');
    assert.equal(created.metadata.labels['forgeline.dev/stage'], 'train');
    const secret = server.secret(created.metadata.name)!;
    const stringData = secret.stringData as Record<string, string>;
    assert.deepEqual(JSON.parse(stringData['spec.json']!), { device: 'cuda', steps: 2, run: 'job-1' });
    assert.equal(stringData['env.WANDB_API_KEY'], 'secret-key');
    assert.equal((secret.metadata.ownerReferences![0] as unknown as { kind: string }).kind, 'Job', 'the Secret goes with its Job');
  });

  it('in a Temporal activity: named after the attempt, labelled with workflow, stage and team (the fairness key)', async () => {
    const info = { workflowExecution: { workflowId: 'release/tiny-demo/0123abc', runId: 'run-1' }, activityId: '7', activityType: 'trainAdapter', attempt: 2, priority: { fairnessKey: 'team-a' } };
    const spec = job({ lines: [RESULT] });
    await new MockActivityEnvironment(info).run(() => runner().run(spec));
    const created = createdFor(`job-${n}`) as ReturnType<typeof createdFor> & { metadata: { annotations: Record<string, string> } };
    assert.equal(created.metadata.labels['forgeline.dev/stage'], 'trainAdapter');
    assert.equal(created.metadata.labels['forgeline.dev/team'], 'team-a');
    assert.match(created.metadata.labels['forgeline.dev/workflow-id']!, /^release\.tiny-demo\.0123abc-[0-9a-f]{10}$/);
    assert.equal(created.metadata.annotations['forgeline.dev/workflow-id'], 'release/tiny-demo/0123abc');
    assert.equal(created.metadata.annotations['forgeline.dev/attempt'], '2');
    // The next attempt is a Job of its own.
    scripts.set(`job-${n}`, { lines: [RESULT] });
    await new MockActivityEnvironment({ ...info, attempt: 3 }).run(() => runner().run(spec));
    assert.equal([...server.created.values()].filter((j) => JSON.stringify(j).includes(`/work/job-${n}"`)).length, 2);
  });

  it('follows the log again when its stream breaks mid-run: every event once, in order', async () => {
    const events: RecipeEvent[] = [];
    const steps = [1, 2, 3].map((step) => ev({ event: 'progress', step, total_steps: 3 }));
    const result = await runner().run(job({ lines: [START, ...steps, RESULT], cutLogAfter: 2, everyMs: 60 }, events));
    assert.deepEqual(result, { final_loss: 0.5 });
    assert.deepEqual(events.map((e) => (e.event === 'progress' ? `progress ${e.step}` : e.event)), ['start', 'progress 1', 'progress 2', 'progress 3', 'result']);
    const pod = server.pods().find((p) => p.metadata.labels?.['batch.kubernetes.io/job-name'] === createdFor(`job-${n}`).metadata.name);
    const follows = server.requests.filter((r) => r.path.endsWith('/log') && r.query.follow === 'true' && (!pod || r.path.includes(pod.metadata.name)));
    assert.ok(follows.length >= 2, 'it followed again');
  });

  it('rejects exit 2 with a terminal RecipeFailedError carrying the recipe\'s error', async () => {
    const err = ev({ event: 'error', message: 'lora.r: expected an integer between 1 and 1024, got 0', type: 'InvalidSpec', retryable: false });
    await assert.rejects(runner().run(job({ lines: [err], exitCode: 2 })), (e: unknown) => e instanceof RecipeFailedError && e.type === ErrorType.InvalidSpec && e.terminal && /lora\.r/.test(e.message));
  });

  it('rejects a crash (exit 1) with a retryable RecipeCrashedError including the log tail', async () => {
    await assert.rejects(runner().run(job({ lines: [START, 'Traceback (most recent call last):', 'RuntimeError: boom'], exitCode: 1 })), (e: unknown) => e instanceof RecipeCrashedError && !e.terminal && /exited with code 1/.test(e.message) && /RuntimeError: boom/.test(e.message));
  });

  it('says OOMKilled when the container went over its memory limit (retryable)', async () => {
    await assert.rejects(runner().run(job({ lines: [START], exitCode: 137, reason: 'OOMKilled' })), (e: unknown) => e instanceof RecipeCrashedError && !e.terminal && /OOMKilled/.test(e.message) && /64Gi/.test(e.message));
  });

  it('fails retryably when the image cannot be pulled, and deletes the Job', async () => {
    const spec = job({ waiting: 'ImagePullBackOff' });
    await assert.rejects(runner().run(spec), (e: unknown) => e instanceof RecipeCrashedError && !e.terminal && /cannot be pulled \(ImagePullBackOff/.test(e.message));
    const name = createdFor(`job-${n}`).metadata.name;
    assert.equal(server.job(name), undefined);
  });

  it('maps an evicted pod (node drain, spot reclaim) to a retryable RecipePreemptedError', async () => {
    await assert.rejects(runner().run(job({ lines: [START], evict: { reason: 'EvictionByEvictionAPI', message: 'Eviction API: evicting' } })), (e: unknown) => e instanceof RecipePreemptedError && /disrupted \(EvictionByEvictionAPI/.test(e.message));
  });

  it('stops a recipe that breaks the protocol (terminal RecipeContract) and deletes its Job', async () => {
    const bad = ev({ event: 'progress', step: 'one', total_steps: 2 });
    await assert.rejects(runner().run(job({ lines: [START, bad], hang: true })), (e: unknown) => e instanceof RecipeFailedError && e.type === ErrorType.RecipeContract && /step/.test(e.message));
    assert.ok(server.requests.some((r) => r.method === 'DELETE' && r.path.endsWith(`/jobs/${createdFor(`job-${n}`).metadata.name}`)));
  });

  it('cancel (abort) deletes the Job with propagationPolicy Foreground and rejects with the reason once its pod is gone', async () => {
    const ac = new AbortController();
    const events: RecipeEvent[] = [];
    const running = runner().run(job({ lines: [START], hang: true }, events, { signal: ac.signal }));
    while (!events.length) await sleep(10);
    ac.abort(new Error('stage cancelled'));
    await assert.rejects(running, /stage cancelled/);
    const name = createdFor(`job-${n}`).metadata.name;
    const del = server.requests.find((r) => r.method === 'DELETE' && r.path.endsWith(`/jobs/${name}`))!;
    assert.equal(del.query.propagationPolicy, 'Foreground');
    assert.equal(server.job(name), undefined);
    assert.equal(server.pods().filter((p) => p.metadata.labels?.['batch.kubernetes.io/job-name'] === name).length, 0);
  });

  it('stops a hung recipe after its progress timeout (retryable)', async () => {
    await assert.rejects(runner().run(job({ lines: [START], hang: true }, [], { progressTimeoutMs: 300 })), (e: unknown) => e instanceof RecipeCrashedError && /no progress for 0.3 s/.test(e.message));
  });

  it('checkpointSignal: the pod\'s SIGTERM becomes the protocol\'s checkpoint request; exit 75 is a retryable RecipePreemptedError', async () => {
    const ac = new AbortController();
    const events: RecipeEvent[] = [];
    const ckpt = ev({ event: 'checkpoint', step: 1, path: 'checkpoints/step-1' });
    const running = runner().run(job({ lines: [START], hang: true, onTerm: { lines: [ckpt], exitCode: 75 } }, events, { checkpointSignal: ac.signal }));
    while (!events.length) await sleep(10);
    ac.abort();
    await assert.rejects(running, (e: unknown) => e instanceof RecipePreemptedError && /asked it to checkpoint/.test(e.message));
    assert.deepEqual(events.map((e) => e.event), ['start', 'checkpoint']);
  });

  it('adopts the Job of the same attempt instead of creating a second one', async () => {
    const spec = job({ lines: [START, RESULT], everyMs: 50 });
    const r = runner();
    const [a, b] = await Promise.all([r.run(spec), r.run({ ...spec })]);
    assert.deepEqual(a, { final_loss: 0.5 });
    assert.deepEqual(b, { final_loss: 0.5 });
    const posts = server.requests.filter((q) => q.method === 'POST' && q.path.endsWith('/jobs') && JSON.stringify(q.body).includes(`/work/job-${n}"`));
    assert.equal(posts.length, 2, 'both asked');
    assert.equal(server.pods().filter((p) => p.metadata.labels?.['batch.kubernetes.io/job-name'] === createdFor(`job-${n}`).metadata.name).length, 1, 'one pod ran');
  });

  it('sets ownerReferences to the worker pod; deleting that pod takes its Jobs (garbage collection), and the TTL removes finished ones', async () => {
    const uid = server.addPod('gpu-worker-h200-0');
    const events: RecipeEvent[] = [];
    const running = runner({ ownerPod: { name: 'gpu-worker-h200-0', uid }, ttlSecondsAfterFinished: 0 }).run(job({ lines: [START], hang: true }, events));
    while (!events.length) await sleep(10);
    const created = createdFor(`job-${n}`);
    assert.deepEqual(created.metadata.ownerReferences, [{ apiVersion: 'v1', kind: 'Pod', name: 'gpu-worker-h200-0', uid, controller: false, blockOwnerDeletion: false }]);
    server.deletePod('gpu-worker-h200-0');
    await assert.rejects(running, (e: unknown) => e instanceof RecipeCrashedError && !e.terminal);
    assert.equal(server.job(created.metadata.name), undefined);
    // The garbage collector works asynchronously, as a cluster's does.
    for (let i = 0; i < 100 && server.secret(created.metadata.name); i++) await sleep(10);
    assert.equal(server.secret(created.metadata.name), undefined, 'the Secret went with its Job');

    const done = await runner({ ttlSecondsAfterFinished: 0 }).run(job({ lines: [RESULT] }));
    assert.deepEqual(done, { final_loss: 0.5 });
    const name = createdFor(`job-${n}`).metadata.name;
    for (let i = 0; i < 100 && server.job(name); i++) await sleep(10);
    assert.equal(server.job(name), undefined, 'ttlSecondsAfterFinished removed it');
  });

  it('with a Kueue queue: labels the Job and creates it suspended for Kueue to admit', async () => {
    const result = await runner({ kueueQueue: 'gpu-h200' }).run(job({ lines: [RESULT] }));
    assert.deepEqual(result, { final_loss: 0.5 });
    const created = createdFor(`job-${n}`);
    assert.equal(created.metadata.labels['kueue.x-k8s.io/queue-name'], 'gpu-h200');
    assert.equal(created.spec.suspend, true);
  });

  it('refuses an output directory off the shared volume and an image name that cannot be, naming the fix', async () => {
    await assert.rejects(runner().run({ ...job({}), outDir: '/elsewhere/out' }), (e: unknown) => e instanceof RecipeFailedError && e.type === ErrorType.InvalidSpec && /not on the shared volume/.test(e.message));
    assert.throws(() => KubernetesJobRunnerConfigSchema.parse({ image: 'ghcr.io/acme/recipes:latest', sharedVolume: { claimName: 'x', mountPath: '/x' } }), /pinned by a tag other than latest/);
    await assert.rejects(runner().run(job({ waiting: 'InvalidImageName' })), (e: unknown) => e instanceof KubernetesJobConfigError && e.terminal);
  });
});
