/**
 * Configuration of the Kubernetes JobRunner (src/adapters/kubernetes-job-runner.ts):
 * `jobRunner.kubernetes` of the config file, or FORGELINE_KUBERNETES as JSON. Field names follow
 * the Kubernetes objects they end up in; each error names the field and what is expected.
 */
import { z } from 'zod';

const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'expected a DNS-1123 label: lowercase letters, digits and dashes, at most 63');
const dnsName = z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'expected a DNS-1123 name: lowercase letters, digits, dashes and dots');
const labelMap = z.record(z.string().regex(/^([a-z0-9.-]{1,253}\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/, 'expected a label key such as nvidia.com/gpu.product'), z.string().max(63, 'expected a label value of at most 63 characters'));
const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/, 'expected a Kubernetes quantity such as 8, 500m or 64Gi');

const TolerationSchema = z.strictObject({
  key: z.string().optional(),
  operator: z.enum(['Exists', 'Equal'], { error: 'expected Exists or Equal' }).optional(),
  value: z.string().optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute'], { error: 'expected NoSchedule, PreferNoSchedule or NoExecute' }).optional(),
  tolerationSeconds: z.number().int().optional(),
});

/** Where a pool's Jobs run: the scheduling constraints of its nodes (DGX, dedicated, spot). */
export const KubernetesPoolSchema = z.strictObject({
  nodeSelector: labelMap.default({}),
  tolerations: z.array(TolerationSchema).default([]),
  runtimeClassName: dnsName.optional(),
  priorityClassName: dnsName.optional(),
  /** CPU and memory each recipe container requests (and is limited to); GPUs come from the stage. */
  cpu: quantity.optional(),
  memory: quantity.optional(),
});

/**
 * `jobRunner.kubernetes` of the config (FORGELINE_KUBERNETES as JSON). Field names follow the
 * Kubernetes objects they end up in.
 */
export const KubernetesJobRunnerConfigSchema = z.strictObject({
  /** Namespace of the Jobs. Default: the worker pod's own namespace, else `default`. */
  namespace: dnsLabel.optional(),
  /** The recipes' image (workers/recipes and the venv), pinned by tag or digest. */
  image: z.string().regex(/^[^\s:@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$/, 'expected an image such as ghcr.io/acme/forgeline-recipes:1.4.0').refine((i) => /:[^/]+$|@sha256:/.test(i) && !i.endsWith(':latest'), 'expected an image pinned by a tag other than latest, or by digest'),
  imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never'], { error: 'expected Always, IfNotPresent or Never' }).default('IfNotPresent'),
  /** A kubeconfig file. Unset: in the cluster, the pod's service account; elsewhere KUBECONFIG or ~/.kube/config. */
  kubeconfig: z.string().min(1).optional(),
  /** Service account of the Jobs' pods (none of the Kubernetes API is needed by a recipe). */
  serviceAccount: dnsName.optional(),
  /** The venv's interpreter and the recipes' folder inside the image. */
  python: z.string().startsWith('/', 'expected an absolute path').default('/opt/forgeline/.venv/bin/python'),
  recipesDir: z.string().startsWith('/', 'expected an absolute path').default('/opt/forgeline/workers/recipes'),
  /** The ReadWriteMany claim holding FORGELINE_HOME, mounted by the worker and its Jobs at one path. */
  sharedVolume: z.strictObject({ claimName: dnsName, mountPath: z.string().startsWith('/', 'expected an absolute path') }),
  /** Scheduling per GPU pool; a pool not listed runs on any node. */
  pools: z.record(z.string(), KubernetesPoolSchema).default({}),
  /** Kueue LocalQueue of the Jobs (`kueue.x-k8s.io/queue-name`); they are then created suspended. */
  kueueQueue: dnsName.optional(),
  /** A finished Job (and its pod and Secret) is deleted this long after it ends. */
  ttlSecondsAfterFinished: z.number().int().min(0).max(7 * 86_400).default(600),
  /** Time a recipe gets to checkpoint and exit after SIGTERM (pod deletion, node drain). */
  terminationGracePeriodSeconds: z.number().int().min(0).max(3600).default(120),
  /** Kubernetes' own limit on a Job's run time (spec.activeDeadlineSeconds). Unset: none (Temporal's timeouts apply). */
  activeDeadlineSeconds: z.number().int().min(1).optional(),
  /** Extra environment of every recipe container (HF_HOME on the shared volume, NCCL settings). */
  env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name'), z.string()).default({}),
});
export type KubernetesJobRunnerConfig = z.infer<typeof KubernetesJobRunnerConfigSchema>;
