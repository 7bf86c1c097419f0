/**
 * Regenerates deploy/schemas/ (see its README.md): the Kubernetes JSON schemas of the kinds
 * Forgeline ships or creates, pruned to the definitions they reach, and KEDA's CRD schemas.
 *
 *   pip download --no-deps kubernetes-validate==1.37.0 -d /tmp/kv && unzip /tmp/kv/*.whl -d /tmp/kv
 *   git clone --branch v2.20.2 https://github.com/kedacore/keda /tmp/keda
 *   npx tsx scripts/vendor-kube-schemas.ts /tmp/kv /tmp/keda
 *
 * Offline afterwards: the manifests test and the Kubernetes API wire endpoint read only the files
 * this writes.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const KUBERNETES_VERSION = 'v1.37.0';
const KEDA_VERSION = 'v2.20.2';
/** File names in kubernetes-validate's `<version>-local-strict` folder. */
const KINDS = [
  'deployment-apps-v1',
  'service-v1',
  'configmap-v1',
  'secret-v1',
  'serviceaccount-v1',
  'role-rbac-v1',
  'rolebinding-rbac-v1',
  'horizontalpodautoscaler-autoscaling-v2',
  'poddisruptionbudget-policy-v1',
  'persistentvolumeclaim-v1',
  'job-batch-v1',
  'pod-v1',
  'deleteoptions-meta-v1',
];
const KEDA_CRDS = ['keda.sh_scaledobjects', 'keda.sh_triggerauthentications'];

const [kvDir, kedaDir] = process.argv.slice(2);
if (!kvDir || !kedaDir) {
  console.error('usage: tsx scripts/vendor-kube-schemas.ts <unzipped kubernetes-validate wheel> <keda checkout>');
  process.exit(2);
}
const out = path.resolve(__dirname, '..', 'deploy', 'schemas');
const src = path.join(kvDir, 'kubernetes_validate', 'kubernetes-json-schema', `${KUBERNETES_VERSION}-local-strict`);

// ---- Kubernetes: the kinds, plus every definition they reach ---------------------------------
const all = JSON.parse(readFileSync(path.join(src, '_definitions.json'), 'utf8')) as { $defs: Record<string, unknown> } & Record<string, unknown>;
const refsIn = (node: unknown, found: Set<string>) => {
  if (Array.isArray(node)) return node.forEach((n) => refsIn(n, found));
  if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') found.add(v.slice(v.indexOf('#/$defs/') + '#/$defs/'.length));
      else refsIn(v, found);
    }
  }
};
const kinds: Record<string, unknown> = {};
const wanted = new Set<string>();
for (const kind of KINDS) {
  kinds[kind] = JSON.parse(readFileSync(path.join(src, `${kind}.json`), 'utf8'));
  refsIn(kinds[kind], wanted);
}
const defs: Record<string, unknown> = {};
const queue = [...wanted];
while (queue.length) {
  const name = queue.pop()!;
  if (defs[name]) continue;
  const def = all.$defs[name];
  if (!def) throw new Error(`definition ${name} not found in ${src}/_definitions.json`);
  defs[name] = def;
  const more = new Set<string>();
  refsIn(def, more);
  queue.push(...[...more].filter((m) => !defs[m]));
}
const k8sOut = path.join(out, 'kubernetes', KUBERNETES_VERSION);
mkdirSync(k8sOut, { recursive: true });
const sorted = Object.fromEntries(Object.keys(defs).sort().map((k) => [k, defs[k]]));
writeFileSync(path.join(k8sOut, '_definitions.json'), `${JSON.stringify({ ...all, $defs: sorted }, null, 1)}\n`);
for (const [kind, schema] of Object.entries(kinds)) writeFileSync(path.join(k8sOut, `${kind}.json`), `${JSON.stringify(schema, null, 1)}\n`);

// ---- KEDA: each CRD's openAPIV3Schema -------------------------------------------------------
const kedaOut = path.join(out, 'keda', KEDA_VERSION);
mkdirSync(kedaOut, { recursive: true });
for (const crd of KEDA_CRDS) {
  const text = execFileSync('git', ['-C', kedaDir, 'show', `${KEDA_VERSION}:config/crd/bases/${crd}.yaml`], { encoding: 'utf8' });
  const doc = parseAllDocuments(text).map((d) => d.toJS() as { spec: { versions: { name: string; schema: { openAPIV3Schema: unknown } }[] } })[0]!;
  const v1alpha1 = doc.spec.versions.find((v) => v.name === 'v1alpha1');
  if (!v1alpha1) throw new Error(`${crd}: no v1alpha1 version`);
  writeFileSync(path.join(kedaOut, `${crd}.v1alpha1.json`), `${JSON.stringify(v1alpha1.schema.openAPIV3Schema, null, 1)}\n`);
}
console.log(`wrote ${KINDS.length} Kubernetes kinds (${Object.keys(defs).length} definitions) and ${KEDA_CRDS.length} KEDA CRD schemas under ${out}`);
