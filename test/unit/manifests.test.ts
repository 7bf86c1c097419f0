/**
 * The shipped Kubernetes manifests (deploy/kubernetes): every document against the vendored
 * Kubernetes v1.37 and KEDA v2.20.2 schemas (deploy/schemas, offline), then what a schema cannot
 * see: references between objects, GPU pools and their ScaledObjects, queue names, pinned images,
 * grace periods, the Kubernetes JobRunner's settings and permissions.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KubernetesJobRunnerConfigSchema } from '../../src/config/kubernetes';
import { REPO_ROOT } from '../../src/config/load';
import { gpuTaskQueue } from '../../src/contracts/task-queues';
import { kubeValidator } from '../helpers/kube-schemas';

const DIR = path.join(REPO_ROOT, 'deploy', 'kubernetes');

/** Trigger metadata KEDA's Temporal scaler reads (kedacore/keda v2.20.2, pkg/scalers/temporal_scaler.go, temporalMetadata). */
const TEMPORAL_TRIGGER_KEYS = new Set(['endpoint', 'namespace', 'activationTargetQueueSize', 'targetQueueSize', 'taskQueue', 'queueTypes', 'buildId', 'workerDeploymentName', 'workerDeploymentBuildId', 'selectAllActive', 'selectUnversioned', 'minConnectTimeout', 'unsafeSsl', 'tlsServerName']);
/** What the Kubernetes JobRunner calls (src/adapters/kubernetes-job-runner.ts). */
const JOB_RUNNER_NEEDS: [group: string, resource: string, verbs: string[]][] = [
  ['batch', 'jobs', ['create', 'get', 'list', 'watch', 'delete']],
  ['', 'pods', ['get', 'list', 'watch']],
  ['', 'pods/log', ['get']],
  ['', 'secrets', ['create', 'get']],
];

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  spec?: any;
  data?: Record<string, string>;
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
  roleRef?: { kind: string; name: string };
  subjects?: { kind: string; name: string }[];
  file: string;
}
interface Container {
  name: string;
  image: string;
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string; optional?: boolean } }[];
  resources?: { limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
  ports?: { name?: string; containerPort: number }[];
}

const kustomization = parseAllDocuments(readFileSync(path.join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as { resources: string[]; images: { name: string; newTag: string }[]; namespace: string };
const docs: Doc[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8')).map((d, i) => {
    assert.deepEqual(d.errors, [], `${file} document ${i + 1} is valid YAML`);
    return { ...(d.toJS() as Omit<Doc, 'file'>), file };
  }),
);
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
const named = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const containers = (d: Doc): Container[] => d.spec.template.spec.containers as Container[];
const envOf = (c: Container, name: string) => c.env?.find((e) => e.name === name)?.value;
const config = named('ConfigMap', 'forgeline-config')!.data!;
const gpuWorkers = byKind('Deployment').filter((d) => d.metadata.labels?.['app.kubernetes.io/name'] === 'gpu-worker');
const seconds = (d: string) => {
  const m = /^(\d+)(ms|s|m|h)$/.exec(d)!;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h'];
};

describe('Kubernetes manifests (deploy/kubernetes)', () => {
  it('kustomization.yaml lists every manifest in the folder', () => {
    const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), files.sort());
    assert.ok(docs.length >= 15);
  });

  it('every document is valid against the Kubernetes v1.37 / KEDA v2.20.2 schema of its kind', () => {
    for (const d of docs) {
      const validate = kubeValidator(d.apiVersion, d.kind);
      assert.ok(validate, `${d.file}: ${d.apiVersion} ${d.kind} has no vendored schema (deploy/schemas)`);
      const { file: _file, ...doc } = d;
      assert.deepEqual(validate(doc), [], `${d.file}: ${d.kind}/${d.metadata.name}`);
      assert.match(d.metadata.name, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, `${d.kind} name`);
    }
  });

  it('the validation can fail: a misspelt field, a wrong type and a non-string trigger value are refused', () => {
    const deployment = structuredClone(named('Deployment', 'control-worker')!) as Partial<Doc>;
    delete deployment.file;
    deployment.spec.template.spec.containers[0].imagePullPolcy = 'Always';
    deployment.spec.replicas = 'two';
    const errors = kubeValidator('apps/v1', 'Deployment')!(deployment);
    assert.ok(errors.some((e) => e.includes('imagePullPolcy')) && errors.some((e) => e.includes('/spec/replicas')), errors.join('\n'));
    const so = structuredClone(byKind('ScaledObject')[0]!) as Partial<Doc>;
    delete so.file;
    so.spec.triggers[0].metadata.targetQueueSize = 1;
    so.spec.minReplicaCount = -1;
    assert.ok(kubeValidator('keda.sh/v1alpha1', 'ScaledObject')!(so).length >= 1);
  });

  it('images are pinned by a tag (never latest), the tags kustomize sets', () => {
    const tags = new Map(kustomization.images.map((i) => [i.name, i.newTag]));
    for (const d of byKind('Deployment')) {
      for (const c of containers(d)) {
        const m = /^(.+):([A-Za-z0-9_][A-Za-z0-9_.-]*)$/.exec(c.image);
        assert.ok(m && m[2] !== 'latest', `${d.metadata.name}/${c.name}: image ${c.image} pinned by tag`);
        assert.equal(tags.get(m[1]!), m[2], `${c.image}: kustomization.yaml images sets the same tag`);
      }
    }
  });

  it('every GPU pool has a Deployment and a ScaledObject on its queue gpu-<pool> with KEDA\'s Temporal scaler', () => {
    assert.ok(gpuWorkers.length >= 3);
    const scaled = byKind('ScaledObject');
    for (const w of gpuWorkers) {
      const pool = envOf(containers(w)[0]!, 'FORGELINE_GPU_POOL')!;
      assert.equal(w.metadata.labels?.['forgeline.dev/pool'], pool);
      assert.equal(w.metadata.name, `gpu-worker-${pool}`);
      const mine = scaled.filter((s) => s.spec.scaleTargetRef.name === w.metadata.name);
      assert.equal(mine.length, 1, `${w.metadata.name}: one ScaledObject`);
      const [trigger, ...more] = mine[0]!.spec.triggers as { type: string; metadata: Record<string, string>; authenticationRef?: { name: string } }[];
      assert.equal(more.length, 0);
      assert.equal(trigger!.type, 'temporal');
      assert.equal(trigger!.metadata.taskQueue, gpuTaskQueue(pool), 'the queue the pool\'s workers poll');
      assert.equal(trigger!.metadata.queueTypes, 'activity', 'GPU queues hold activities only');
      assert.equal(trigger!.metadata.endpoint, config.TEMPORAL_ADDRESS, 'the frontend the workers use');
      assert.equal(trigger!.metadata.namespace, config.TEMPORAL_NAMESPACE);
      for (const key of Object.keys(trigger!.metadata)) assert.ok(TEMPORAL_TRIGGER_KEYS.has(key), `${w.metadata.name}: Temporal scaler has no metadata ${key}`);
      assert.match(trigger!.metadata.targetQueueSize!, /^[1-9]\d*$/);
      assert.match(trigger!.metadata.activationTargetQueueSize!, /^\d+$/);
      if (trigger!.authenticationRef) {
        const auth = named('TriggerAuthentication', trigger!.authenticationRef.name);
        assert.ok(auth, `TriggerAuthentication ${trigger!.authenticationRef.name} exists`);
        assert.deepEqual(auth.spec.secretTargetRef.map((r: { parameter: string }) => r.parameter), ['apiKey'], 'the Temporal scaler\'s API key parameter');
      }
    }
    for (const s of [...scaled, ...byKind('HorizontalPodAutoscaler')]) {
      assert.ok(named('Deployment', s.spec.scaleTargetRef.name), `${s.kind} ${s.metadata.name} targets an existing Deployment`);
    }
  });

  it('bursty pools scale to zero and back (minReplicaCount 0, any backlog activates them)', () => {
    const toZero = byKind('ScaledObject').filter((s) => s.spec.minReplicaCount === 0);
    assert.ok(toZero.length >= 2);
    for (const s of toZero) {
      assert.equal(s.spec.triggers[0].metadata.activationTargetQueueSize, '0');
      assert.ok(s.spec.maxReplicaCount >= 1 && s.spec.cooldownPeriod > 0);
      assert.equal(named('Deployment', s.spec.scaleTargetRef.name)!.spec.replicas, 0, 'starts at zero; KEDA brings it up');
    }
  });

  it('GPU workers get time to checkpoint: terminationGracePeriodSeconds covers FORGELINE_SHUTDOWN_GRACE', () => {
    for (const w of gpuWorkers) {
      assert.ok(w.spec.template.spec.terminationGracePeriodSeconds >= seconds(config.FORGELINE_SHUTDOWN_GRACE!) + 30, w.metadata.name);
    }
  });

  it('in-pod pools request the GPUs they lease; Job pools run the Kubernetes JobRunner with its settings and permissions', () => {
    for (const w of gpuWorkers) {
      const c = containers(w)[0]!;
      const pool = envOf(c, 'FORGELINE_GPU_POOL')!;
      const runner = envOf(c, 'FORGELINE_JOB_RUNNER');
      const spec = w.spec.template.spec;
      if (runner === 'local') {
        assert.equal(c.resources?.limits?.['nvidia.com/gpu'], envOf(c, 'FORGELINE_GPU_COUNT'), `${pool}: nvidia.com/gpu = FORGELINE_GPU_COUNT`);
        assert.ok(Object.keys(spec.nodeSelector ?? {}).length, `${pool}: on its nodes`);
        assert.ok((spec.tolerations ?? []).some((t: { key: string }) => t.key === 'nvidia.com/gpu'), `${pool}: tolerates the GPU taint`);
        continue;
      }
      assert.equal(runner, 'kubernetes', `${pool}: FORGELINE_JOB_RUNNER is local or kubernetes`);
      assert.equal(c.resources?.limits?.['nvidia.com/gpu'], undefined, `${pool}: its Jobs hold the GPUs, not the worker`);
      const settings = KubernetesJobRunnerConfigSchema.parse(JSON.parse(envOf(c, 'FORGELINE_KUBERNETES')!));
      assert.ok(settings.pools[pool], `${pool}: FORGELINE_KUBERNETES.pools has its scheduling`);
      assert.ok(named('PersistentVolumeClaim', settings.sharedVolume.claimName));
      assert.equal(settings.sharedVolume.mountPath, config.FORGELINE_HOME, 'Jobs write under FORGELINE_HOME');
      assert.ok(c.volumeMounts?.some((m) => m.mountPath === settings.sharedVolume.mountPath && spec.volumes.find((v: { name: string }) => v.name === m.name)?.persistentVolumeClaim?.claimName === settings.sharedVolume.claimName));
      if (settings.serviceAccount) assert.ok(named('ServiceAccount', settings.serviceAccount));
      assert.equal(c.env?.find((e) => e.name === 'FORGELINE_POD_NAME')?.valueFrom?.fieldRef?.fieldPath, 'metadata.name');
      assert.equal(c.env?.find((e) => e.name === 'FORGELINE_POD_UID')?.valueFrom?.fieldRef?.fieldPath, 'metadata.uid');
      const account = spec.serviceAccountName as string;
      const rules = byKind('RoleBinding')
        .filter((b) => b.subjects!.some((s) => s.kind === 'ServiceAccount' && s.name === account))
        .flatMap((b) => named(b.roleRef!.kind, b.roleRef!.name)?.rules ?? []);
      for (const [group, resource, verbs] of JOB_RUNNER_NEEDS) {
        for (const verb of verbs) {
          assert.ok(rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb)), `${account} may ${verb} ${resource}`);
        }
      }
    }
    assert.ok(gpuWorkers.some((w) => envOf(containers(w)[0]!, 'FORGELINE_JOB_RUNNER') === 'kubernetes'), 'one pool shows the Kubernetes JobRunner');
  });

  it('references resolve: ConfigMaps, claims, service accounts, Service selectors and ports', () => {
    for (const d of byKind('Deployment')) {
      const spec = d.spec.template.spec;
      assert.deepEqual(d.spec.selector.matchLabels, Object.fromEntries(Object.keys(d.spec.selector.matchLabels).map((k) => [k, d.spec.template.metadata.labels[k]])), `${d.metadata.name}: selector matches its pods`);
      if (spec.serviceAccountName) assert.ok(named('ServiceAccount', spec.serviceAccountName), `${d.metadata.name}: ServiceAccount`);
      for (const v of spec.volumes ?? []) if (v.persistentVolumeClaim) assert.ok(named('PersistentVolumeClaim', v.persistentVolumeClaim.claimName));
      for (const c of containers(d)) {
        for (const f of c.envFrom ?? []) {
          if (f.configMapRef) assert.ok(named('ConfigMap', f.configMapRef.name));
          if (f.secretRef) assert.equal(f.secretRef.optional, true, 'forgeline-secrets is created by the operator; optional keeps a missing one visible in the logs, not a stuck pod');
        }
      }
    }
    for (const s of byKind('Service')) {
      const target = byKind('Deployment').find((d) => Object.entries(s.spec.selector as Record<string, string>).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      assert.ok(target, `Service ${s.metadata.name} selects a Deployment's pods`);
      for (const p of s.spec.ports as { targetPort: string | number }[]) {
        assert.ok(containers(target).some((c) => c.ports?.some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort)), `Service ${s.metadata.name}: target port ${p.targetPort}`);
      }
    }
    for (const b of byKind('RoleBinding')) assert.ok(named(b.roleRef!.kind, b.roleRef!.name), `RoleBinding ${b.metadata.name}: role`);
  });

  it('kustomize renders the same objects (kubectl kustomize, where kubectl is installed)', function () {
    if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) this.skip();
    const rendered = parseAllDocuments(execFileSync('kubectl', ['kustomize', DIR], { encoding: 'utf8' })).map((d) => d.toJS() as { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } });
    assert.deepEqual(rendered.map((d) => `${d.kind}/${d.metadata.name}`).sort(), docs.map((d) => `${d.kind}/${d.metadata.name}`).sort());
    for (const d of rendered) assert.equal(d.metadata.labels?.['app.kubernetes.io/part-of'], 'forgeline');
    for (const d of rendered) assert.equal(d.metadata.namespace, kustomization.namespace);
  });
});
