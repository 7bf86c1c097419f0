/**
 * Validators for the vendored Kubernetes and KEDA schemas (deploy/schemas/README.md), with ajv:
 * offline, the same files for the manifests test and the Kubernetes API wire endpoint.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { REPO_ROOT } from '../../src/config/load';

export const KUBERNETES_SCHEMA_DIR = path.join(REPO_ROOT, 'deploy', 'schemas', 'kubernetes', 'v1.37.0');
export const KEDA_SCHEMA_DIR = path.join(REPO_ROOT, 'deploy', 'schemas', 'keda', 'v2.20.2');

/** Kubernetes kinds by `apiVersion/kind`, to the file of their schema. */
const KUBERNETES_FILES: Record<string, string> = {
  'apps/v1/Deployment': 'deployment-apps-v1',
  'v1/Service': 'service-v1',
  'v1/ConfigMap': 'configmap-v1',
  'v1/Secret': 'secret-v1',
  'v1/ServiceAccount': 'serviceaccount-v1',
  'rbac.authorization.k8s.io/v1/Role': 'role-rbac-v1',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'rolebinding-rbac-v1',
  'autoscaling/v2/HorizontalPodAutoscaler': 'horizontalpodautoscaler-autoscaling-v2',
  'policy/v1/PodDisruptionBudget': 'poddisruptionbudget-policy-v1',
  'v1/PersistentVolumeClaim': 'persistentvolumeclaim-v1',
  'batch/v1/Job': 'job-batch-v1',
  'v1/Pod': 'pod-v1',
  'v1/DeleteOptions': 'deleteoptions-meta-v1',
};
const KEDA_FILES: Record<string, string> = {
  'keda.sh/v1alpha1/ScaledObject': 'keda.sh_scaledobjects.v1alpha1',
  'keda.sh/v1alpha1/TriggerAuthentication': 'keda.sh_triggerauthentications.v1alpha1',
};

export type KubeValidator = (doc: unknown) => string[];

let cache: Map<string, KubeValidator> | undefined;

function load(): Map<string, KubeValidator> {
  if (cache) return cache;
  // strict off: the schemas carry x-kubernetes-* annotations ajv does not know.
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  // Kubernetes' integer formats, which ajv-formats does not define.
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('double', { type: 'number', validate: () => true });
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addSchema(JSON.parse(readFileSync(path.join(KUBERNETES_SCHEMA_DIR, '_definitions.json'), 'utf8')) as object);
  const compiled = new Map<string, KubeValidator>();
  const wrap = (fn: ValidateFunction): KubeValidator => (doc) => (fn(doc) ? [] : (fn.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`));
  for (const [key, file] of Object.entries(KUBERNETES_FILES)) {
    compiled.set(key, wrap(ajv.compile(JSON.parse(readFileSync(path.join(KUBERNETES_SCHEMA_DIR, `${file}.json`), 'utf8')) as object)));
  }
  // The CRD schemas are OpenAPI v3 subsets (no $schema): compiled as draft 2020-12, which reads them the same.
  for (const [key, file] of Object.entries(KEDA_FILES)) {
    compiled.set(key, wrap(ajv.compile(JSON.parse(readFileSync(path.join(KEDA_SCHEMA_DIR, `${file}.json`), 'utf8')) as object)));
  }
  cache = compiled;
  return compiled;
}

/** The validator of `apiVersion/kind`, or undefined for a kind without a vendored schema. */
export function kubeValidator(apiVersion: string, kind: string): KubeValidator | undefined {
  return load().get(`${apiVersion}/${kind}`);
}

/** Every kind with a vendored schema, as `apiVersion/kind`. */
export function kubeKinds(): string[] {
  return [...load().keys()];
}

/** Vendored files, for a test that checks each is used. */
export function vendoredSchemaFiles(): string[] {
  return [...readdirSync(KUBERNETES_SCHEMA_DIR), ...readdirSync(KEDA_SCHEMA_DIR)];
}
