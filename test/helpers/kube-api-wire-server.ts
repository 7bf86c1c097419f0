/**
 * A local stand-in for the Kubernetes API server, for the Kubernetes JobRunner's tests. NOT a
 * cluster: no kube-apiserver or etcd can be installed here (none ships on PyPI, npm or Debian), so
 * this endpoint speaks the API's wire format, checks the requests the way the real server reads
 * them, and plays the controllers a Job needs (Job controller, kubelet, garbage collector, TTL
 * controller, Kueue admission) from a script per Job.
 *
 * What it checks (an off-spec request is answered 400/415/422 as the API would and recorded in
 * `violations`; tests assert it stays empty):
 * - `Authorization: Bearer <token>` (401 otherwise), JSON bodies;
 * - a created Job against the batch/v1 Job JSON Schema of Kubernetes v1.37 (deploy/schemas,
 *   unknown fields refused as `kubectl --validate=strict` does), a created Secret against v1
 *   Secret's; names as DNS-1123 labels of at most 63 characters (a Job's name goes into its pods'
 *   `job-name` label); `restartPolicy` Never or OnFailure; label keys and values;
 * - DELETE options (`propagationPolicy` in the query or a DeleteOptions body);
 * - list/watch query parameters (`labelSelector` as `k=v[,k=v]`, `fieldSelector=metadata.name=x`,
 *   `resourceVersion`, `watch`), pod log parameters (`container`, `follow`).
 *
 * What it serves: Job create/get/list/watch/delete, Secret create/get, Pod list/watch/log/delete,
 * watch streams as newline-delimited `{"type","object"}` JSON with resource versions, logs as
 * chunked text that ends with the container. A Job's pod runs the `PodScript` the test gives for
 * it: lines it prints, its exit code and reason, an image that will not pull, a SIGTERM handler, an
 * eviction. Foreground deletion removes the pod first, then the Job; the garbage collector deletes
 * what a deleted owner owned; `ttlSecondsAfterFinished` deletes a finished Job.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import { kubeValidator } from './kube-schemas';

export interface PodScript {
  /** Printed once the container runs, in order, each after `everyMs` (default 5). */
  lines?: string[];
  everyMs?: number;
  /** Exit code once the lines are out (default 0), and the terminated reason (default Completed/Error). */
  exitCode?: number;
  reason?: string;
  /** Keeps running after its lines until the pod is deleted (a hung or long recipe). */
  hang?: boolean;
  /** The container never starts: its waiting reason (e.g. ImagePullBackOff). */
  waiting?: string;
  /** What the container does on SIGTERM (pod deletion): print these, exit with this (default 143). */
  onTerm?: { lines?: string[]; exitCode: number };
  /** The API server cuts every log stream following the pod once, after this many lines (a restart, a proxy's timeout). */
  cutLogAfter?: number;
  /** The node evicts the pod after its lines (a DisruptionTarget condition, then exit 137). */
  evict?: { reason: string; message: string };
}

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> & { name: string; namespace?: string; uid: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: { uid: string }[] } };

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  body?: unknown;
}

export interface KubeApiWireServer {
  url: string;
  token: string;
  violations: string[];
  requests: Recorded[];
  /** Jobs as created (the request body), by name. */
  created: Map<string, Record<string, unknown>>;
  job(name: string): Obj | undefined;
  secret(name: string): Obj | undefined;
  pods(): Obj[];
  /** Adds a pod that is not a Job's (the GPU worker owning the Jobs); returns its uid. */
  addPod(name: string): string;
  /** Deletes any pod by name, as `kubectl delete pod` would (the garbage collector follows). */
  deletePod(name: string): void;
  /** How Kueue admits suspended Jobs: after this long (default 50 ms). */
  kueueAdmitAfterMs: number;
  kubeconfig(namespace: string): string;
  close(): Promise<void>;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly violation = false,
  ) {
    super(message);
  }
}

export async function startKubeApiWireServer(script: (job: Record<string, unknown>) => PodScript): Promise<KubeApiWireServer> {
  const token = `wire-${randomUUID()}`;
  const violations: string[] = [];
  const requests: Recorded[] = [];
  const created = new Map<string, Record<string, unknown>>();
  const store = { Job: new Map<string, Obj>(), Secret: new Map<string, Obj>(), Pod: new Map<string, Obj>() };
  type Kind = keyof typeof store;
  let rv = 1;
  const history: { rv: number; kind: Kind; type: string; object: Obj }[] = [];
  const watchers = new Set<{ kind: Kind; match: (o: Obj) => boolean; res: http.ServerResponse }>();
  const logs = new Map<string, { text: string; lines: number; cutAfter: number | undefined; ended: boolean; followers: Set<http.ServerResponse> }>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };
  const clone = <T>(o: T): T => JSON.parse(JSON.stringify(o)) as T;

  const emit = (kind: Kind, type: string, object: Obj) => {
    object.metadata.resourceVersion = String(++rv);
    if (type === 'DELETED') store[kind].delete(object.metadata.name);
    else store[kind].set(object.metadata.name, object);
    history.push({ rv, kind, type, object: clone(object) });
    for (const w of watchers) if (w.kind === kind && w.match(object)) w.res.write(`${JSON.stringify({ type, object })}\n`);
  };

  // ---- controllers --------------------------------------------------------------------------
  const podOf = (job: Obj) => [...store.Pod.values()].find((p) => p.metadata.labels?.['batch.kubernetes.io/controller-uid'] === job.metadata.uid);
  const setContainer = (pod: Obj, state: Record<string, unknown>, phase: string, extra: Record<string, unknown> = {}) => {
    const status = { ...(pod.status as Record<string, unknown>), phase, ...extra, containerStatuses: [{ name: 'recipe', image: 'x', imageID: '', ready: 'running' in state, restartCount: 0, state }] };
    emit('Pod', 'MODIFIED', { ...pod, status });
  };
  const appendLog = (pod: string, line: string) => {
    const log = logs.get(pod)!;
    log.text += `${line}\n`;
    for (const f of log.followers) f.write(`${line}\n`);
    log.lines++;
    if (log.cutAfter !== undefined && log.lines >= log.cutAfter) {
      log.cutAfter = undefined;
      for (const f of log.followers) f.end();
      log.followers.clear();
    }
  };
  const endLog = (pod: string) => {
    const log = logs.get(pod);
    if (!log || log.ended) return;
    log.ended = true;
    for (const f of log.followers) f.end();
    log.followers.clear();
  };
  const finishJob = (job: Obj, succeeded: boolean) => {
    const current = store.Job.get(job.metadata.name);
    if (!current || current.metadata.uid !== job.metadata.uid) return;
    const now = new Date().toISOString();
    const conditions = succeeded
      ? [{ type: 'SuccessCriteriaMet', status: 'True' }, { type: 'Complete', status: 'True' }]
      : [{ type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded' }, { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' }];
    emit('Job', 'MODIFIED', { ...current, status: { ...(current.status as object), conditions: conditions.map((c) => ({ ...c, lastTransitionTime: now })), [succeeded ? 'succeeded' : 'failed']: 1, completionTime: now } });
    const ttl = (current.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished;
    if (ttl !== undefined) later(ttl * 1000, () => store.Job.get(job.metadata.name)?.metadata.uid === job.metadata.uid && deleteJob(job.metadata.name, 'Background'));
  };
  const terminate = (pod: Obj, exitCode: number, reason: string) => {
    const job = store.Job.get(String(pod.metadata.labels?.['batch.kubernetes.io/job-name']));
    if ((pod.status as { containerStatuses?: { state: { terminated?: unknown } }[] })?.containerStatuses?.[0]?.state.terminated) return;
    setContainer(store.Pod.get(pod.metadata.name) ?? pod, { terminated: { exitCode, reason, startedAt: new Date().toISOString(), finishedAt: new Date().toISOString() } }, exitCode === 0 ? 'Succeeded' : 'Failed');
    endLog(pod.metadata.name);
    if (job) finishJob(job, exitCode === 0);
  };
  const startPod = (job: Obj) => {
    const name = `${job.metadata.name}-${randomUUID().slice(0, 5)}`;
    const template = (job.spec as { template: { metadata: { labels: Record<string, string> }; spec: unknown } }).template;
    const pod: Obj = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: job.metadata.namespace, uid: randomUUID(), labels: { ...template.metadata.labels }, ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job.metadata.name, uid: job.metadata.uid, controller: true, blockOwnerDeletion: true } as never] },
      spec: clone(template.spec),
      status: { phase: 'Pending' },
    };
    emit('Pod', 'ADDED', pod);
    const plan = script(created.get(job.metadata.name)!);
    logs.set(name, { text: '', lines: 0, cutAfter: plan.cutLogAfter, ended: false, followers: new Set() });
    const secretName = (template.spec as { volumes?: { secret?: { secretName: string } }[] }).volumes?.find((v) => v.secret)?.secret?.secretName;
    const run = () => {
      const p = store.Pod.get(name);
      if (!p || p.metadata.deletionTimestamp) return;
      // The kubelet mounts the Secret volume before the container starts; it retries until it exists.
      if (secretName && !store.Secret.has(secretName)) return later(10, run);
      if (plan.waiting) return setContainer(p, { waiting: { reason: plan.waiting, message: `Back-off pulling image "${String((p.spec as { containers: { image: string }[] }).containers[0]!.image)}"` } }, 'Pending');
      setContainer(p, { running: { startedAt: new Date().toISOString() } }, 'Running');
      const lines = plan.lines ?? [];
      let i = 0;
      const next = () => {
        const cur = store.Pod.get(name);
        if (!cur || cur.metadata.deletionTimestamp) return;
        if (i < lines.length) {
          appendLog(name, lines[i++]!);
          return later(plan.everyMs ?? 5, next);
        }
        if (plan.evict) {
          emit('Pod', 'MODIFIED', { ...cur, status: { ...(cur.status as object), conditions: [{ type: 'DisruptionTarget', status: 'True', reason: plan.evict.reason, message: plan.evict.message }] } });
          return later(5, () => terminate(store.Pod.get(name)!, 137, 'Error'));
        }
        if (plan.hang) return;
        terminate(cur, plan.exitCode ?? 0, plan.reason ?? (plan.exitCode ? 'Error' : 'Completed'));
      };
      later(plan.everyMs ?? 5, next);
    };
    later(10, run);
  };
  const deletePodNow = (name: string) => {
    const pod = store.Pod.get(name);
    if (!pod) return;
    const plan = (() => {
      const jobName = pod.metadata.labels?.['batch.kubernetes.io/job-name'];
      const job = jobName ? created.get(jobName) : undefined;
      return job ? script(job) : {};
    })();
    const running = (pod.status as { containerStatuses?: { state: { running?: unknown } }[] })?.containerStatuses?.[0]?.state.running;
    emit('Pod', 'MODIFIED', { ...pod, metadata: { ...pod.metadata, deletionTimestamp: new Date().toISOString(), deletionGracePeriodSeconds: 30 } });
    if (running) {
      for (const l of plan.onTerm?.lines ?? []) appendLog(name, l);
      terminate(store.Pod.get(name)!, plan.onTerm?.exitCode ?? 143, 'Error');
    }
    endLog(name);
    emit('Pod', 'DELETED', store.Pod.get(name)!);
    collectGarbage(pod.metadata.uid);
  };
  const collectGarbage = (ownerUid: string) => {
    for (const kind of ['Job', 'Secret', 'Pod'] as Kind[]) {
      for (const o of [...store[kind].values()]) {
        if (o.metadata.ownerReferences?.some((r) => r.uid === ownerUid)) {
          if (kind === 'Job') deleteJob(o.metadata.name, 'Background');
          else if (kind === 'Pod') deletePodNow(o.metadata.name);
          else {
            emit(kind, 'DELETED', o);
            collectGarbage(o.metadata.uid);
          }
        }
      }
    }
  };
  const deleteJob = (name: string, policy: string) => {
    const job = store.Job.get(name);
    if (!job) return;
    const pod = podOf(job);
    if (policy === 'Foreground') {
      emit('Job', 'MODIFIED', { ...job, metadata: { ...job.metadata, deletionTimestamp: new Date().toISOString(), finalizers: ['foregroundDeletion'] } });
      later(5, () => {
        if (pod) deletePodNow(pod.metadata.name);
        const cur = store.Job.get(name);
        if (cur) emit('Job', 'DELETED', cur);
        collectGarbage(job.metadata.uid);
      });
    } else {
      emit('Job', 'DELETED', job);
      later(5, () => collectGarbage(job.metadata.uid));
    }
  };

  // ---- requests -----------------------------------------------------------------------------
  const status = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });

  const checkName = (name: unknown, what: string) => {
    if (typeof name !== 'string' || !DNS_LABEL.test(name)) throw new ApiError(422, 'Invalid', `${what} "${String(name)}" is invalid: metadata.name: a lowercase RFC 1123 label of at most 63 characters`, true);
  };
  const checkLabels = (labels: unknown, where: string) => {
    for (const [k, v] of Object.entries((labels ?? {}) as Record<string, string>)) {
      if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) throw new ApiError(422, 'Invalid', `${where}: label ${k}: invalid value ${JSON.stringify(v)}`, true);
    }
  };
  const validate = (apiVersion: string, kind: string, body: unknown) => {
    const errors = kubeValidator(apiVersion, kind)!(body);
    if (errors.length) throw new ApiError(400, 'BadRequest', `${kind} in version "${apiVersion}" cannot be handled: strict decoding error: ${errors.join('; ')}`, true);
  };
  const selectorMatch = (selector: string | undefined, o: Obj) => {
    if (!selector) return true;
    return selector.split(',').every((term) => {
      const m = /^([^=!]+)=([^=]*)$/.exec(term);
      if (!m) throw new ApiError(400, 'BadRequest', `unable to parse requirement: ${term}`, true);
      return o.metadata.labels?.[m[1]!] === m[2];
    });
  };
  const fieldMatch = (selector: string | undefined, o: Obj) => {
    if (!selector) return true;
    const m = /^metadata\.name=(.+)$/.exec(selector);
    if (!m) throw new ApiError(400, 'BadRequest', `field label not supported: ${selector}`, true);
    return o.metadata.name === m[1];
  };

  const listOrWatch = (kind: Kind, query: Record<string, string>, res: http.ServerResponse) => {
    const match = (o: Obj) => selectorMatch(query.labelSelector, o) && fieldMatch(query.fieldSelector, o);
    if (query.watch === 'true' || query.watch === '1') {
      const since = Number(query.resourceVersion ?? rv);
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      for (const h of history) if (h.kind === kind && h.rv > since && match(h.object)) res.write(`${JSON.stringify({ type: h.type, object: h.object })}\n`);
      const w = { kind, match, res };
      watchers.add(w);
      res.on('close', () => watchers.delete(w));
      return;
    }
    const items = [...store[kind].values()].filter(match);
    reply(res, 200, { kind: `${kind}List`, apiVersion: kind === 'Job' ? 'batch/v1' : 'v1', metadata: { resourceVersion: String(rv) }, items });
  };

  const reply = (res: http.ServerResponse, code: number, body: unknown) => {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    if (raw) {
      if (!/application\/(json|merge-patch\+json|json-patch\+json|strategic-merge-patch\+json)/.test(req.headers['content-type'] ?? '')) throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format: ${req.headers['content-type']}`, true);
      body = JSON.parse(raw) as unknown;
    }
    const rec: Recorded = { method: req.method ?? '', path: url.pathname, query, ...(body !== undefined ? { body } : {}) };
    requests.push(rec);
    if (req.headers.authorization !== `Bearer ${token}`) throw new ApiError(401, 'Unauthorized', 'Unauthorized');

    let m: RegExpExecArray | null;
    if ((m = /^\/apis\/batch\/v1\/namespaces\/([^/]+)\/jobs(?:\/([^/]+))?$/.exec(url.pathname))) {
      const [, ns, name] = m;
      if (req.method === 'POST' && !name) {
        validate('batch/v1', 'Job', body);
        const job = body as Obj;
        checkName(job.metadata.name, 'Job');
        checkLabels(job.metadata.labels, 'metadata.labels');
        const tpl = (job.spec as { template: { metadata?: { labels?: Record<string, string> }; spec: { restartPolicy?: string } } }).template;
        checkLabels(tpl.metadata?.labels, 'spec.template.metadata.labels');
        if (!['Never', 'OnFailure'].includes(tpl.spec.restartPolicy ?? '')) throw new ApiError(422, 'Invalid', `Job.batch "${job.metadata.name}" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"`, true);
        if (job.metadata.namespace && job.metadata.namespace !== ns) throw new ApiError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request', true);
        if (store.Job.has(job.metadata.name)) throw new ApiError(409, 'AlreadyExists', `jobs.batch "${job.metadata.name}" already exists`);
        created.set(job.metadata.name, clone(job as Record<string, unknown>));
        const uid = randomUUID();
        const labels = { 'batch.kubernetes.io/controller-uid': uid, 'batch.kubernetes.io/job-name': job.metadata.name, 'controller-uid': uid, 'job-name': job.metadata.name };
        const stored: Obj = { ...clone(job), metadata: { ...clone(job.metadata), namespace: ns, uid, creationTimestamp: new Date().toISOString(), generation: 1 } } as Obj;
        const spec = stored.spec as Record<string, unknown> & { template: { metadata?: { labels?: Record<string, string> } } };
        spec.selector = { matchLabels: { 'batch.kubernetes.io/controller-uid': uid } };
        spec.template.metadata = { ...spec.template.metadata, labels: { ...spec.template.metadata?.labels, ...labels } };
        stored.status = {};
        emit('Job', 'ADDED', stored);
        if (spec.suspend === true) {
          if (job.metadata.labels?.['kueue.x-k8s.io/queue-name']) {
            later(server.kueueAdmitAfterMs, () => {
              const cur = store.Job.get(job.metadata.name);
              if (!cur || cur.metadata.uid !== uid) return;
              emit('Job', 'MODIFIED', { ...cur, spec: { ...(cur.spec as object), suspend: false } });
              startPod(store.Job.get(job.metadata.name)!);
            });
          }
        } else startPod(stored);
        return reply(res, 201, store.Job.get(job.metadata.name));
      }
      if (req.method === 'GET' && name) {
        const job = store.Job.get(name);
        if (!job) throw new ApiError(404, 'NotFound', `jobs.batch "${name}" not found`);
        return reply(res, 200, job);
      }
      if (req.method === 'GET') return listOrWatch('Job', query, res);
      if (req.method === 'DELETE' && name) {
        const opts = (body ?? {}) as { propagationPolicy?: string };
        if (body !== undefined) validate('v1', 'DeleteOptions', { apiVersion: 'v1', kind: 'DeleteOptions', ...opts });
        const policy = query.propagationPolicy ?? opts.propagationPolicy ?? 'Orphan';
        if (!['Foreground', 'Background', 'Orphan'].includes(policy)) throw new ApiError(400, 'BadRequest', `propagationPolicy: unsupported value ${policy}`, true);
        const job = store.Job.get(name);
        if (!job) throw new ApiError(404, 'NotFound', `jobs.batch "${name}" not found`);
        deleteJob(name, policy);
        return reply(res, 200, { ...job, status: job.status });
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/secrets(?:\/([^/]+))?$/.exec(url.pathname))) {
      const [, ns, name] = m;
      if (req.method === 'POST' && !name) {
        validate('v1', 'Secret', body);
        const secret = body as Obj;
        checkName(secret.metadata.name, 'Secret');
        if (store.Secret.has(secret.metadata.name)) throw new ApiError(409, 'AlreadyExists', `secrets "${secret.metadata.name}" already exists`);
        const stored = { ...clone(secret), metadata: { ...clone(secret.metadata), namespace: ns, uid: randomUUID() } } as Obj;
        emit('Secret', 'ADDED', stored);
        return reply(res, 201, stored);
      }
      if (req.method === 'GET' && name) {
        const s = store.Secret.get(name);
        if (!s) throw new ApiError(404, 'NotFound', `secrets "${name}" not found`);
        return reply(res, 200, s);
      }
    }
    if ((m = /^\/api\/v1\/namespaces\/([^/]+)\/pods(?:\/([^/]+)(\/log)?)?$/.exec(url.pathname))) {
      const [, , name, log] = m;
      if (req.method === 'GET' && !name) return listOrWatch('Pod', query, res);
      if (req.method === 'GET' && name && log) {
        if (query.container && query.container !== 'recipe') throw new ApiError(400, 'BadRequest', `container ${query.container} is not valid for pod ${name}`);
        const l = logs.get(name);
        if (!l) throw new ApiError(404, 'NotFound', `pods "${name}" not found`);
        res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
        res.write(l.text);
        if (query.follow === 'true' && !l.ended) {
          l.followers.add(res);
          res.on('close', () => l.followers.delete(res));
        } else res.end();
        return;
      }
      if (req.method === 'DELETE' && name) {
        if (!store.Pod.has(name)) throw new ApiError(404, 'NotFound', `pods "${name}" not found`);
        const pod = store.Pod.get(name)!;
        deletePodNow(name);
        return reply(res, 200, pod);
      }
    }
    throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${req.method} ${url.pathname})`, true);
  };

  const httpServer = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError(500, 'InternalError', (err as Error).message);
      if (e.violation) violations.push(`${req.method} ${req.url}: ${e.message}`);
      if (!res.headersSent) reply(res, e.code, status(e.code, e.reason, e.message));
      else res.end();
    });
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;

  const server: KubeApiWireServer = {
    url,
    token,
    violations,
    requests,
    created,
    kueueAdmitAfterMs: 50,
    job: (name) => store.Job.get(name),
    secret: (name) => store.Secret.get(name),
    pods: () => [...store.Pod.values()],
    addPod(name) {
      const uid = randomUUID();
      emit('Pod', 'ADDED', { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'forgeline', uid, labels: { app: 'gpu-worker' } }, status: { phase: 'Running' } });
      return uid;
    },
    deletePod: (name) => deletePodNow(name),
    kubeconfig: (namespace) =>
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'wire', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'wire', user: { token } }],
        contexts: [{ name: 'wire', context: { cluster: 'wire', user: 'wire', namespace } }],
        'current-context': 'wire',
      }),
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const w of watchers) w.res.end();
      for (const l of logs.values()) for (const f of l.followers) f.end();
      httpServer.closeAllConnections();
      await new Promise<void>((resolve) => httpServer.close(() => resolve()));
    },
  };
  return server;
}
