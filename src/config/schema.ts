import { z } from 'zod';
import { KubernetesJobRunnerConfigSchema } from './kubernetes';

/** Accepts true/false/1/0/yes/no (any case) from env strings, or real booleans from a file. */
const bool = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  return v;
}, z.boolean({ error: 'expected true or false' }));

const port = z.coerce
  .number({ error: 'expected a TCP port number' })
  .int('expected a whole number')
  .min(1, 'expected a port in 1..65535')
  .max(65535, 'expected a port in 1..65535');

const hostPort = z
  .string()
  .regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'expected host:port, e.g. localhost:7233 or my-ns.tmprl.cloud:7233');

const artifactUri = z
  .string()
  .regex(/^(file:\/\/\/|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$)/, 'expected file:///absolute/dir or s3://bucket[/prefix]');

const poolName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'expected a lowercase pool name like cpu, h200 or a100-80g (letters, digits, dashes)');

/** A count setting of the autoscaler: a whole number in [lo, hi]. */
const count = (what: string, lo: number, hi: number) =>
  z.number({ error: `expected ${what} as a whole number` }).int(`expected ${what} as a whole number`).min(lo, `expected ${what} of at least ${lo}`).max(hi, `expected ${what} of at most ${hi}`);

/**
 * One pool of the dev stack's autoscaler (src/fleet/autoscaler.ts). Field names and meaning follow
 * KEDA's Temporal scaler and the HPA it drives, so a pool scales under `forgeline dev` as it would
 * in a cluster: desired workers = ceil(backlog / targetQueueSize), within [min, max].
 */
export const AutoscalePoolSchema = z.strictObject({
  /** Fewest worker processes (KEDA minReplicaCount); 0: the pool scales to zero when idle. */
  min: count('min', 0, 64).default(0),
  /** Most worker processes (KEDA maxReplicaCount). */
  max: count('max', 1, 64),
  /** Backlog (scheduled, not yet started tasks) one worker is sized for (KEDA targetQueueSize). */
  targetQueueSize: count('targetQueueSize', 1, 1_000_000).default(1),
  /** A pool at zero starts a worker once the backlog is above this (KEDA activationTargetQueueSize). */
  activationTargetQueueSize: count('activationTargetQueueSize', 0, 1_000_000).default(0),
  /** After the backlog was last above the activation threshold, this long before scaling to zero (KEDA cooldownPeriod). */
  cooldownSeconds: count('cooldownSeconds', 0, 86_400).default(300),
  /** Scale down to the highest desired count of this window (HPA behavior.scaleDown.stabilizationWindowSeconds). */
  stabilizationSeconds: count('stabilizationSeconds', 0, 86_400).default(300),
  /** FORGELINE_GPU_COUNT of each worker the autoscaler starts. */
  gpusPerWorker: count('gpusPerWorker', 1, 64).default(1),
  /** Where nvidia-smi answers: no scale-down while the GPUs' mean utilisation is at or above this percent. */
  busyUtilizationPercent: count('busyUtilizationPercent', 1, 100).optional(),
}).refine((p) => p.min <= p.max, { message: 'expected min at most max: lower min or raise max', path: ['min'] });

/** `FORGELINE_AUTOSCALE` is the same object as JSON text. */
const autoscale = z.preprocess(
  (v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  },
  z.strictObject(
    {
      /** How often the autoscaler reads the backlog. */
      intervalSeconds: z.number({ error: 'expected intervalSeconds as a number' }).min(0.2, 'expected intervalSeconds of at least 0.2').max(3600, 'expected intervalSeconds of at most 3600').default(5),
      pools: z.record(poolName, AutoscalePoolSchema, { error: 'expected pools as a mapping of pool name to {min, max, targetQueueSize, ...}' }),
    },
    { error: 'expected a JSON object like {"pools": {"h200": {"min": 0, "max": 4, "targetQueueSize": 1}}}' },
  ),
);

/**
 * Everything Forgeline can be configured with, from a JSON file (FORGELINE_CONFIG) and the
 * environment (which wins). Only workers, scripts and the CLI load it; activities and workflows
 * receive what they need as arguments.
 */
export const ConfigSchema = z.object({
  home: z.string().min(1),
  venv: z.string().min(1),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']),
  temporal: z.object({
    /** Unset: Forgeline runs its own dev server (`forgeline dev`) and connects to it. */
    address: hostPort.optional(),
    namespace: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/, 'expected a namespace name such as default'),
    devPort: port,
    uiPort: port,
    tls: z.object({
      enabled: bool,
      certPath: z.string().min(1).optional(),
      keyPath: z.string().min(1).optional(),
      caPath: z.string().min(1).optional(),
      /** PEM text instead of a file (Temporal's `*_DATA` variables), e.g. from a mounted secret. */
      certData: z.string().min(1).optional(),
      keyData: z.string().min(1).optional(),
      caData: z.string().min(1).optional(),
      serverName: z.string().min(1).optional(),
    }),
    apiKey: z.string().min(1).optional(),
  }),
  taskQueues: z.object({
    control: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dots, dashes or underscores'),
  }),
  artifacts: z.object({
    uri: artifactUri,
    s3: z.object({
      endpoint: z.url({ error: 'expected a URL such as http://localhost:9000' }).optional(),
      region: z.string().min(1),
      forcePathStyle: bool,
    }),
  }),
  tracker: z.object({
    kind: z.enum(['local', 'wandb'], { error: 'expected local or wandb' }),
    wandb: z.object({
      apiKey: z.string().min(1).optional(),
      baseUrl: z.url({ error: 'expected a URL such as https://api.wandb.ai' }),
      entity: z.string().min(1).optional(),
      project: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, dots, dashes or underscores'),
      /** `offline`: recipes write their W&B runs locally for `wandb sync` (no network). */
      mode: z.enum(['online', 'offline'], { error: 'expected online or offline' }),
    }),
  }),
  gpu: z.object({
    pool: poolName,
    count: z.coerce.number({ error: 'expected a whole number' }).int('expected a whole number').min(1, 'expected at least 1').max(64, 'expected at most 64'),
    /** CUDA_VISIBLE_DEVICES of the worker: the physical GPUs it may lease (default 0..count-1). */
    visibleDevices: z.string().regex(/^\s*\d+\s*(,\s*\d+\s*)*$/, 'expected comma-separated GPU indices such as 0,1,2,3').optional(),
  }),
  worker: z.object({
    /** How long running recipes get to checkpoint and stop after SIGTERM before they are cancelled. */
    shutdownGrace: z.string().regex(/^\d{1,6}(ms|s|m|h)$/, 'expected a duration such as 30s, 2m or 0s'),
    /** Stop (gracefully) when this process goes away: set by `forgeline dev` for the workers it starts. */
    parentPid: z.coerce.number({ error: 'expected a process id' }).int('expected a process id').positive('expected a process id').optional(),
    /** A GPU worker on a spot / preemptible machine watches its cloud's metadata endpoint for the preemption notice (src/fleet/spot.ts). */
    spot: z
      .object({
        provider: z.enum(['aws', 'gcp', 'azure'], { error: 'expected aws, gcp or azure (set FORGELINE_SPOT_PROVIDER with FORGELINE_SPOT_METADATA_URL)' }),
        /** The metadata service's base URL; default the provider's own (http://169.254.169.254, http://metadata.google.internal). */
        metadataUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) base URL such as http://169.254.169.254' }).optional(),
        pollSeconds: z.coerce.number({ error: 'expected a number of seconds' }).min(0.05, 'expected at least 0.05 seconds').max(60, 'expected at most 60 seconds (AWS recommends 5)').default(5),
      })
      .optional(),
  }),
  /** Prometheus metrics and OpenTelemetry tracing of workers (src/observability). */
  observability: z.object({
    /** Port of the worker's Prometheus endpoint (Temporal SDK metrics and ours on one `/metrics`); unset: none. */
    metricsPort: port.optional(),
    metricsHost: z.string().min(1, 'expected a host or address such as 127.0.0.1 or 0.0.0.0'),
    /** Unset: `otlp` when otlpEndpoint is set, else off. */
    tracing: z.enum(['otlp', 'console', 'off'], { error: 'expected otlp, console or off' }).optional(),
    otlpEndpoint: z.string().regex(/^https?:\/\/[^\s/]+\S*$/, 'expected a URL such as http://localhost:4318').optional(),
  }),
  /** The inference servers (vLLM) releases with spec.serving load their adapters on. */
  serving: z.object({
    /** vLLM replica base URLs (or one Kubernetes Service / KServe InferenceService URL). */
    vllmUrls: z
      .string()
      .transform((v) => v.split(',').map((u) => u.trim()).filter(Boolean))
      .pipe(z.array(z.url({ error: 'expected base URLs such as http://127.0.0.1:8000' })).min(1, 'expected at least one URL'))
      .optional(),
    /** Where adapters are unpacked for the replicas to read (a volume every replica mounts). */
    dir: z.string().min(1),
    /** Flags for the vLLM servers the control worker launches for quantized candidates (split on spaces). */
    launchArgs: z.string().transform((v) => v.split(/\s+/).filter(Boolean)),
  }),
  /** The inference gateway (src/gateway): OpenAI-compatible proxy, routing table, token limits. */
  gateway: z.object({
    port,
    host: z.string().min(1, 'expected a host or address such as 127.0.0.1 or 0.0.0.0'),
    adminToken: z.string().min(8, 'expected at least 8 characters').optional(),
    keys: z
      .string()
      .regex(/^\s*[^=,\s]+=[A-Za-z0-9._-]+:\d+\s*(,\s*[^=,\s]+=[A-Za-z0-9._-]+:\d+\s*)*$/, 'expected key=tenant:tokensPerMinute[,key=tenant:tokensPerMinute...], e.g. sk-team-a=team-a:60000')
      .optional(),
    keysFile: z.string().min(1).optional(),
    devKey: z.string().min(8, 'expected at least 8 characters'),
    /** Client key workers send with their own gateway calls (prompt evaluation); default: devKey. */
    clientKey: z.string().min(8, 'expected at least 8 characters').optional(),
    redisUrl: z.string().regex(/^rediss?:\/\/\S+$/, 'expected redis://host:port[/db] or rediss://...').optional(),
    stateDir: z.string().min(1),
    /** Where workers reach the gateway's admin API; default http://<host>:<port> of the settings above. */
    url: z.url({ error: 'expected a URL such as http://127.0.0.1:8300' }).optional(),
  }),
  /** Teams' GPU quotas and admission (src/contracts/quota.ts, workflows/admission). */
  fleet: z.object({
    /** The quota file (YAML); unset: no quotas, GPU stages take no leases. */
    quotas: z.string().min(1).optional(),
  }).default({}),
  /** The Git push webhook receiver (`forgeline webhook serve`, src/webhooks/server.ts). */
  webhook: z.object({
    port,
    host: z.string().min(1, 'expected a host or address such as 127.0.0.1 or 0.0.0.0'),
    githubSecret: z.string().min(16, 'expected at least 16 characters, e.g. from `openssl rand -hex 32`').optional(),
    gitlabToken: z.string().min(16, 'expected at least 16 characters, e.g. from `openssl rand -hex 32`').optional(),
    /** `owner/name=/path/to/checkout` or `owner/name=github`, comma-separated (src/adapters/repo-reader.ts). */
    repos: z.string().optional(),
    /** Token for repositories read through the GitHub API. */
    githubToken: z.string().min(1).optional(),
    githubApiUrl: z.url({ error: 'expected a URL such as https://api.github.com or https://github.example.com/api/v3' }).optional(),
    bodyLimit: z.coerce.number({ error: 'expected a number of bytes' }).int('expected a whole number of bytes').min(1024, 'expected at least 1024 bytes').max(100 * 1024 * 1024, 'expected at most 104857600 bytes (100 MiB)'),
  }),
  /** `forgeline dev`'s autoscaler of local GPU worker processes (src/fleet/autoscaler.ts); unset: one GPU worker for gpu.pool. */
  autoscale: autoscale.optional(),
  /** What GPU workers run recipes with: processes of their own (`local`) or Kubernetes Jobs (src/adapters/kubernetes-job-runner.ts). */
  jobRunner: z
    .object({
      kind: z.enum(['local', 'kubernetes'], { error: 'expected local or kubernetes' }),
      kubernetes: z
        .preprocess((v) => {
          if (typeof v !== 'string') return v;
          try {
            return JSON.parse(v) as unknown;
          } catch {
            return v;
          }
        }, KubernetesJobRunnerConfigSchema)
        .optional(),
      /** The worker's own pod (downward API), owner of the Jobs it starts. */
      podName: z.string().min(1).optional(),
      podUid: z.string().min(1).optional(),
    })
    .refine((r) => r.kind !== 'kubernetes' || r.kubernetes !== undefined, { message: 'FORGELINE_JOB_RUNNER=kubernetes needs FORGELINE_KUBERNETES (JSON: image, sharedVolume, pools, ...) or jobRunner.kubernetes in the config file', path: ['kubernetes'] }),
  /** The vector store re-embedding writes to and retrieval queries (src/adapters/vector-store.ts). */
  vectors: z.object({
    store: z.enum(['pglite', 'postgres', 'pinecone', 'qdrant', 'weaviate', 'milvus'], {
      error: 'expected pglite, postgres, pinecone, qdrant, weaviate or milvus',
    }),
    /** PGlite's data directory (store `pglite`). */
    dir: z.string().min(1),
    /** PostgreSQL with pgvector (store `postgres`). */
    pgUrl: z.string().regex(/^postgres(ql)?:\/\/\S+$/, 'expected postgres://user:password@host:5432/database').optional(),
    // Each store's own settings go below (one object per store).
    /** Weaviate 1.32 or newer (store `weaviate`; src/adapters/weaviate-store.ts). */
    weaviate: z
      .object({
        url: z.url({ error: 'expected a URL such as http://localhost:8080' }).optional(),
        grpcUrl: z.url({ error: 'expected a URL such as http://localhost:50051' }).optional(),
        apiKey: z.string().min(1).optional(),
      })
      .optional(),
    /** Pinecone serverless (store `pinecone`; src/adapters/pinecone-store.ts). The alias rows live in the SQL registry (pgUrl, else dir). */
    pinecone: z
      .object({
        apiKey: z.string().min(1).optional(),
        /** The control plane; Pinecone's own (https://api.pinecone.io) when unset. */
        host: z.url({ error: 'expected a URL such as https://api.pinecone.io or http://127.0.0.1:5080' }).optional(),
        project: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'expected a short name: letters, digits, _ . -').optional(),
        cloud: z.enum(['aws', 'gcp', 'azure'], { error: 'expected aws, gcp or azure' }).optional(),
        region: z.string().regex(/^[a-z0-9-]{2,40}$/, 'expected a region such as us-east-1').optional(),
      })
      .optional(),
    /** Qdrant 1.16 or newer (store `qdrant`; src/adapters/qdrant-store.ts). */
    qdrant: z
      .object({
        url: z.url({ error: 'expected a URL such as http://localhost:6333' }).optional(),
        apiKey: z.string().min(1).optional(),
      })
      .optional(),
    /** Milvus 2.3 or newer, or Zilliz Cloud (store `milvus`; src/adapters/milvus-store.ts). */
    milvus: z
      .object({
        address: z.string().regex(/^([^\s/:]+:\d+|https?:\/\/[^\s/]+)$/, 'expected host:port of the Milvus proxy, e.g. 127.0.0.1:19530, or https://<endpoint> for TLS / Zilliz Cloud').optional(),
        token: z.string().min(1).optional(),
      })
      .optional(),
  }),
});

export type ForgelineConfig = z.infer<typeof ConfigSchema>;

/** One environment variable and where it lands in the config. Drives loading, errors and docs. */
export interface EnvBinding {
  env: string;
  path: readonly string[];
  /** Default as a string, or a function of the partially built config (for derived defaults). */
  default?: string | ((cfg: { home: string; repoRoot: string }) => string);
  doc: string;
  secret?: boolean;
  /** The key in a `temporal.toml` profile that sets the same value (Temporal's own conventions). */
  profileKey?: string;
}

export const ENV_BINDINGS: readonly EnvBinding[] = [
  { env: 'FORGELINE_HOME', path: ['home'], default: '.forgeline', doc: 'State directory: dev-server SQLite database, local artifacts, local tracker runs, logs. Relative paths resolve against the working directory.' },
  { env: 'FORGELINE_CONFIG', path: [], doc: 'Optional JSON config file with the same structure as the resolved config (`forgeline config` prints it). Environment variables win over the file. Default: `forgeline.config.json` in the working directory, when present.' },
  { env: 'FORGELINE_VENV', path: ['venv'], default: ({ repoRoot }) => `${repoRoot}/.venv`, doc: 'Python virtual environment with the Temporal CLI and the recipes\' dependencies (made by scripts/bootstrap).' },
  { env: 'FORGELINE_LOG_LEVEL', path: ['logLevel'], default: 'info', doc: 'debug, info, warn or error.' },
  { env: 'TEMPORAL_ADDRESS', path: ['temporal', 'address'], profileKey: 'address', doc: 'host:port of an existing Temporal frontend. Unset: `forgeline dev` starts a local dev server and everything connects to it.' },
  { env: 'TEMPORAL_NAMESPACE', path: ['temporal', 'namespace'], profileKey: 'namespace', default: 'default', doc: 'Temporal namespace.' },
  { env: 'TEMPORAL_CONFIG_FILE', path: [], doc: 'Temporal\'s client config file (TOML, profiles as the `temporal` CLI writes them with `temporal config set`). Default: `$XDG_CONFIG_HOME/temporalio/temporal.toml` (`~/.config/temporalio/temporal.toml`), when present. A named file that does not exist is an error.' },
  { env: 'TEMPORAL_PROFILE', path: [], doc: 'Profile to use from the client config file. Default: `default`, when the file has one.' },
  { env: 'FORGELINE_DEV_PORT', path: ['temporal', 'devPort'], default: '7233', doc: 'gRPC port of the local dev server (when TEMPORAL_ADDRESS is unset).' },
  { env: 'FORGELINE_UI_PORT', path: ['temporal', 'uiPort'], default: '8233', doc: 'Web UI port of the local dev server.' },
  { env: 'TEMPORAL_TLS', path: ['temporal', 'tls', 'enabled'], profileKey: 'tls.disabled', default: 'false', doc: 'Connect with TLS. Implied by TEMPORAL_API_KEY or any other TEMPORAL_TLS_* setting.' },
  { env: 'TEMPORAL_TLS_CLIENT_CERT_PATH', path: ['temporal', 'tls', 'certPath'], profileKey: 'tls.client_cert_path', doc: 'Client certificate (PEM file) for mTLS, e.g. Temporal Cloud.' },
  { env: 'TEMPORAL_TLS_CLIENT_KEY_PATH', path: ['temporal', 'tls', 'keyPath'], profileKey: 'tls.client_key_path', doc: 'Client private key (PEM file) for mTLS.' },
  { env: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH', path: ['temporal', 'tls', 'caPath'], profileKey: 'tls.server_ca_cert_path', doc: 'CA bundle (PEM file) to verify the server, when not publicly trusted.' },
  { env: 'TEMPORAL_TLS_CLIENT_CERT_DATA', path: ['temporal', 'tls', 'certData'], profileKey: 'tls.client_cert_data', doc: 'The client certificate as PEM text, instead of a file.' },
  { env: 'TEMPORAL_TLS_CLIENT_KEY_DATA', path: ['temporal', 'tls', 'keyData'], profileKey: 'tls.client_key_data', secret: true, doc: 'The client private key as PEM text, instead of a file.' },
  { env: 'TEMPORAL_TLS_SERVER_CA_CERT_DATA', path: ['temporal', 'tls', 'caData'], profileKey: 'tls.server_ca_cert_data', doc: 'The server CA bundle as PEM text, instead of a file.' },
  { env: 'TEMPORAL_TLS_SERVER_NAME', path: ['temporal', 'tls', 'serverName'], profileKey: 'tls.server_name', doc: 'Override the TLS server name (SNI).' },
  { env: 'TEMPORAL_API_KEY', path: ['temporal', 'apiKey'], profileKey: 'api_key', secret: true, doc: 'API key for Temporal Cloud (implies TLS).' },
  { env: 'FORGELINE_CONTROL_QUEUE', path: ['taskQueues', 'control'], default: 'forgeline-control', doc: 'Task queue of the control worker (workflows and light activities). GPU queues are `gpu-<pool>`.' },
  { env: 'FORGELINE_ARTIFACT_URI', path: ['artifacts', 'uri'], default: ({ home }) => `file://${home}/artifacts`, doc: 'Artifact store root: `file:///abs/dir` or `s3://bucket/prefix`.' },
  { env: 'FORGELINE_S3_ENDPOINT', path: ['artifacts', 's3', 'endpoint'], doc: 'Custom S3 endpoint for S3-compatible stores (MinIO, Ceph, R2...). Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles, IAM roles).' },
  { env: 'AWS_REGION', path: ['artifacts', 's3', 'region'], default: 'us-east-1', doc: 'S3 region.' },
  { env: 'FORGELINE_S3_FORCE_PATH_STYLE', path: ['artifacts', 's3', 'forcePathStyle'], default: 'false', doc: 'Use path-style S3 URLs (needed by most S3-compatible servers).' },
  { env: 'FORGELINE_TRACKER', path: ['tracker', 'kind'], default: 'local', doc: '`local` (JSONL under FORGELINE_HOME/runs) or `wandb`.' },
  { env: 'WANDB_API_KEY', path: ['tracker', 'wandb', 'apiKey'], secret: true, doc: 'Weights & Biases API key (required when FORGELINE_TRACKER=wandb).' },
  { env: 'WANDB_BASE_URL', path: ['tracker', 'wandb', 'baseUrl'], default: 'https://api.wandb.ai', doc: 'W&B API URL (set it for a dedicated or self-hosted W&B server).' },
  { env: 'WANDB_ENTITY', path: ['tracker', 'wandb', 'entity'], doc: 'W&B entity (team or user). Default: the API key\'s default entity.' },
  { env: 'WANDB_PROJECT', path: ['tracker', 'wandb', 'project'], default: 'forgeline', doc: 'W&B project for lifecycle runs and the recipes\' stage runs.' },
  { env: 'WANDB_MODE', path: ['tracker', 'wandb', 'mode'], default: 'online', doc: '`online`, or `offline`: recipes write their W&B runs under FORGELINE_HOME/wandb for a later `wandb sync` (the lifecycle run still needs the API).' },
  { env: 'FORGELINE_GPU_POOL', path: ['gpu', 'pool'], default: 'cpu', doc: 'Pool served by this GPU worker; it polls task queue `gpu-<pool>`.' },
  { env: 'FORGELINE_GPU_COUNT', path: ['gpu', 'count'], default: '1', doc: 'GPUs this GPU worker owns. It takes a task only when one of them is free and every task it holds has its GPUs, so a job using all of them leaves the next task to another worker.' },
  { env: 'CUDA_VISIBLE_DEVICES', path: ['gpu', 'visibleDevices'], doc: 'Physical GPUs (indices) this GPU worker may lease, the first `FORGELINE_GPU_COUNT` of them; each recipe sees only its own. Default: 0..count-1.' },
  { env: 'FORGELINE_SHUTDOWN_GRACE', path: ['worker', 'shutdownGrace'], default: '30s', doc: 'After SIGTERM (spot notice, rolling deploy) a GPU worker stops polling and asks running recipes to checkpoint and exit; this long they get before they are cancelled. The retry resumes from that checkpoint on another worker. `0s`: cancel at once. On a spot worker it is capped to fit the provider\'s notice (see "Spot instances").' },
  { env: 'FORGELINE_VLLM_URLS', path: ['serving', 'vllmUrls'], doc: 'vLLM replica base URLs, comma-separated (or one Kubernetes Service / KServe InferenceService URL): the control worker loads and unloads release adapters on every one. Unset: `forgeline dev` and `demo` start a vLLM on CPU and pass its URL to their control worker; a worker started otherwise fails releases with `serving` (ServingNotConfigured).' },
  { env: 'FORGELINE_SERVING_DIR', path: ['serving', 'dir'], default: ({ home }) => `${home}/serving`, doc: 'Where the control worker unpacks adapters for the vLLM replicas to read (a volume every replica mounts); each stays until it is unloaded.' },
  { env: 'FORGELINE_SERVING_LAUNCH_ARGS', path: ['serving', 'launchArgs'], default: '--dtype bfloat16', doc: 'vLLM flags for the servers the control worker launches for quantized candidates (`serving.candidate: quantized`), one per version, recorded under FORGELINE_SERVING_DIR/launches. The default suits vLLM on CPU (its int4 kernel takes bf16 activations); on GPUs e.g. `--dtype float16 --gpu-memory-utilization 0.4 --max-model-len 4096`.' },
  { env: 'FORGELINE_GATEWAY_PORT', path: ['gateway', 'port'], default: '8300', doc: 'Port of the inference gateway (OpenAI-compatible `/v1/*`, admin API `/admin/*`, Prometheus `/metrics`).' },
  { env: 'FORGELINE_GATEWAY_HOST', path: ['gateway', 'host'], default: '127.0.0.1', doc: 'Address the gateway listens on (`0.0.0.0` for every interface).' },
  { env: 'FORGELINE_GATEWAY_ADMIN_TOKEN', path: ['gateway', 'adminToken'], secret: true, doc: 'Bearer token of the gateway\'s admin API (routing table, metrics window, traffic samples). Unset: the admin API refuses every call (401); `forgeline dev` and `demo` then generate one, kept in FORGELINE_GATEWAY_STATE_DIR/admin-token.' },
  { env: 'FORGELINE_GATEWAY_KEYS', path: ['gateway', 'keys'], secret: true, doc: 'Client API keys: `key=tenant:tokensPerMinute`, comma-separated. The token limit is per tenant, shared by its keys and, with Redis, by every replica.' },
  { env: 'FORGELINE_GATEWAY_KEYS_FILE', path: ['gateway', 'keysFile'], doc: 'A JSON file of client keys, `{"keys": [{"key", "tenant", "tokensPerMinute"}]}`, in addition to FORGELINE_GATEWAY_KEYS.' },
  { env: 'FORGELINE_GATEWAY_DEV_KEY', path: ['gateway', 'devKey'], default: 'forgeline-dev', doc: 'Client key the dev stack\'s gateway accepts with a generous limit (10M tokens/min, tenant `dev`).' },
  { env: 'FORGELINE_GATEWAY_CLIENT_KEY', path: ['gateway', 'clientKey'], secret: true, doc: 'Client key (one of FORGELINE_GATEWAY_KEYS) the control worker sends with its own gateway calls: prompt evaluation\'s generation and judge requests. Unset: FORGELINE_GATEWAY_DEV_KEY (what the dev stack\'s gateway accepts).' },
  { env: 'FORGELINE_GATEWAY_REDIS_URL', path: ['gateway', 'redisUrl'], secret: true, doc: 'Redis for gateway replicas: shared token limits, metrics window, feedback, traffic samples and routing table (`redis://host:port`). Unset: one gateway, state in memory and the table in FORGELINE_GATEWAY_STATE_DIR.' },
  { env: 'FORGELINE_GATEWAY_STATE_DIR', path: ['gateway', 'stateDir'], default: ({ home }) => `${home}/gateway`, doc: 'Where a gateway without Redis keeps its routing table (`routes.json`, written atomically).' },
  { env: 'FORGELINE_GATEWAY_URL', path: ['gateway', 'url'], doc: 'Where workers reach the gateway\'s admin API (canary weights, metrics). Default: `http://FORGELINE_GATEWAY_HOST:FORGELINE_GATEWAY_PORT` (127.0.0.1 for 0.0.0.0).' },
  { env: 'FORGELINE_METRICS_PORT', path: ['observability', 'metricsPort'], doc: 'Port of this worker\'s Prometheus endpoint, `http://<host>:<port>/metrics`: the Temporal SDK\'s `temporal_*` metrics and Forgeline\'s `forgeline_*` ones in one scrape. Unset: no endpoint. Every worker process needs its own port; `forgeline dev` gives its GPU worker this port + 1.' },
  { env: 'FORGELINE_METRICS_HOST', path: ['observability', 'metricsHost'], default: '0.0.0.0', doc: 'Address the Prometheus endpoint binds (`127.0.0.1`: this host only).' },
  { env: 'FORGELINE_TRACING', path: ['observability', 'tracing'], doc: 'OpenTelemetry tracing of workflows and activities: `otlp` (OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, default http://localhost:4318), `console` (spans on stdout) or `off`. Unset: `otlp` when OTEL_EXPORTER_OTLP_ENDPOINT is set, else off.' },
  { env: 'OTEL_EXPORTER_OTLP_ENDPOINT', path: ['observability', 'otlpEndpoint'], doc: 'Standard OpenTelemetry variable: base URL of an OTLP/HTTP collector (Jaeger, Grafana Tempo, an OpenTelemetry Collector), e.g. `http://localhost:4318`; traces go to `<url>/v1/traces`. Setting it turns tracing on. The exporter also honours the other standard `OTEL_EXPORTER_OTLP_*` variables (headers, traces endpoint).' },
  { env: 'FORGELINE_WEBHOOK_PORT', path: ['webhook', 'port'], default: '8400', doc: 'Port of the Git push webhook receiver (`forgeline webhook serve`; `--port` wins).' },
  { env: 'FORGELINE_WEBHOOK_HOST', path: ['webhook', 'host'], default: '127.0.0.1', doc: 'Address the webhook receiver listens on (`0.0.0.0` for every interface; `--host` wins).' },
  { env: 'FORGELINE_WEBHOOK_SECRET', path: ['webhook', 'githubSecret'], secret: true, doc: 'GitHub webhook secret: deliveries to `/webhooks/github` must carry its HMAC-SHA256 in X-Hub-Signature-256. Unset: GitHub deliveries are refused (401).' },
  { env: 'FORGELINE_WEBHOOK_GITLAB_TOKEN', path: ['webhook', 'gitlabToken'], secret: true, doc: 'GitLab webhook secret token, compared with X-Gitlab-Token on `/webhooks/gitlab`. Unset: GitLab deliveries are refused (401).' },
  { env: 'FORGELINE_WEBHOOK_REPOS', path: ['webhook', 'repos'], doc: 'Where the receiver reads `forgeline.yaml` and spec files from, at the pushed commit, per repository: a local checkout, `owner/name=/path/to/checkout` (GitLab: `group/project=/path`), or the GitHub API, `owner/name=github`; comma-separated. Pushes of other repositories are ignored.' },
  { env: 'FORGELINE_GITHUB_TOKEN', path: ['webhook', 'githubToken'], secret: true, doc: 'GitHub token with contents:read, for repositories FORGELINE_WEBHOOK_REPOS reads through the GitHub API (`owner/name=github`).' },
  { env: 'FORGELINE_GITHUB_API_URL', path: ['webhook', 'githubApiUrl'], doc: 'GitHub REST API base URL. Default: `https://api.github.com`; GitHub Enterprise Server: `https://<host>/api/v3`.' },
  { env: 'FORGELINE_WEBHOOK_BODY_LIMIT', path: ['webhook', 'bodyLimit'], default: '1048576', doc: 'Largest webhook body accepted, in bytes (default 1 MiB); a larger one is refused with 413, never buffered.' },
  { env: 'FORGELINE_AUTOSCALE', path: ['autoscale'], doc: '`forgeline dev` scales local GPU worker processes per pool from the `gpu-<pool>` backlog, as KEDA\'s Temporal scaler does in a cluster: JSON (or `autoscale` in the config file) like `{"pools": {"cpu": {"min": 0, "max": 2, "targetQueueSize": 1, "cooldownSeconds": 60}}}`; see "Autoscaling GPU workers". Unset: one GPU worker for FORGELINE_GPU_POOL.' },
  { env: 'FORGELINE_SPOT_PROVIDER', path: ['worker', 'spot', 'provider'], doc: 'A GPU worker on a spot / preemptible machine: `aws`, `gcp` or `azure`. It polls that cloud\'s metadata endpoint for the preemption notice and, when it comes, stops taking tasks, has running recipes checkpoint, fails their attempts retryably (`WorkerPreempted`) and exits before the deadline; see "Spot instances". Unset: no polling (SIGTERM still stops gracefully).' },
  { env: 'FORGELINE_SPOT_METADATA_URL', path: ['worker', 'spot', 'metadataUrl'], doc: 'Base URL of the metadata service the spot watch polls. Default: the provider\'s own, `http://169.254.169.254` (AWS IMDSv2, Azure Scheduled Events) or `http://metadata.google.internal` (GCP).' },
  { env: 'FORGELINE_SPOT_POLL_SECONDS', path: ['worker', 'spot', 'pollSeconds'], doc: 'How often the spot watch polls, in seconds (default 5, as AWS recommends).' },
  { env: 'FORGELINE_QUOTAS', path: ['fleet', 'quotas'], doc: 'Teams\' GPU quota file (YAML, see examples/quotas.yaml and "Teams, quotas and admission"), read by the control worker: lifecycle specs name a team, and every GPU stage takes a lease from its pool\'s admission workflow before it runs. Unset: no quotas; GPU stages run as before.' },
  { env: 'FORGELINE_JOB_RUNNER', path: ['jobRunner', 'kind'], default: 'local', doc: 'How a GPU worker runs recipes: `local` (processes of its own, on the GPUs it owns) or `kubernetes` (one Kubernetes Job per stage, see "Running on Kubernetes").' },
  { env: 'FORGELINE_KUBERNETES', path: ['jobRunner', 'kubernetes'], doc: 'The Kubernetes JobRunner\'s settings as JSON (or `jobRunner.kubernetes` in the config file): `{"image": "<recipes image:tag>", "sharedVolume": {"claimName", "mountPath"}, "pools": {"<pool>": {"nodeSelector", "tolerations", "runtimeClassName?", "memory?"}}, "kueueQueue?", "ttlSecondsAfterFinished?": 600, "namespace?", "kubeconfig?", "serviceAccount?"}`; see "Running on Kubernetes".' },
  { env: 'FORGELINE_POD_NAME', path: ['jobRunner', 'podName'], doc: 'The GPU worker\'s pod name (downward API `metadata.name`): its Kubernetes Jobs are owned by it and deleted with it.' },
  { env: 'FORGELINE_POD_UID', path: ['jobRunner', 'podUid'], doc: 'The GPU worker\'s pod UID (downward API `metadata.uid`), with FORGELINE_POD_NAME.' },
  { env: 'FORGELINE_PARENT_PID', path: ['worker', 'parentPid'], doc: 'Set by `forgeline dev` for the workers it starts: a worker stops (as on SIGTERM) when that process is gone.' },
  { env: 'FORGELINE_VECTOR_STORE', path: ['vectors', 'store'], default: 'pglite', doc: 'Vector store for embeddings: `pglite` (embedded pgvector under FORGELINE_VECTOR_DIR), `postgres` (pgvector on FORGELINE_PG_URL), `pinecone`, `qdrant`, `weaviate` or `milvus`.' },
  { env: 'FORGELINE_VECTOR_DIR', path: ['vectors', 'dir'], default: ({ home }) => `${home}/vectors`, doc: 'PGlite data directory of the `pglite` vector store (one process at a time opens it).' },
  { env: 'FORGELINE_PG_URL', path: ['vectors', 'pgUrl'], secret: true, doc: 'PostgreSQL with the pgvector extension for the `postgres` vector store: `postgres://user:password@host:5432/database`.' },
  { env: 'FORGELINE_WEAVIATE_URL', path: ['vectors', 'weaviate', 'url'], doc: 'REST endpoint of Weaviate (1.32 or newer, for its collection aliases) for the `weaviate` vector store, e.g. `http://localhost:8080` or `https://my-cluster.weaviate.cloud`.' },
  { env: 'FORGELINE_WEAVIATE_GRPC_URL', path: ['vectors', 'weaviate', 'grpcUrl'], doc: 'gRPC endpoint of Weaviate (batch writes, searches, counts), e.g. `http://localhost:50051`. Default: the REST host on port 50051, with TLS when the REST URL is https.' },
  { env: 'FORGELINE_WEAVIATE_API_KEY', path: ['vectors', 'weaviate', 'apiKey'], secret: true, doc: 'Weaviate API key (sent as a Bearer token on REST and gRPC). Unset: anonymous access.' },
  { env: 'FORGELINE_PINECONE_API_KEY', path: ['vectors', 'pinecone', 'apiKey'], secret: true, doc: 'Pinecone API key for the `pinecone` vector store (Pinecone console, API keys).' },
  { env: 'FORGELINE_PINECONE_HOST', path: ['vectors', 'pinecone', 'host'], doc: 'Pinecone control-plane URL. Default: Pinecone\'s own (`https://api.pinecone.io`); tests point it at a local endpoint.' },
  { env: 'FORGELINE_PINECONE_PROJECT', path: ['vectors', 'pinecone', 'project'], doc: 'Scope of the `pinecone` store\'s alias rows in the SQL registry, when several Pinecone projects share one. Default: `default`.' },
  { env: 'FORGELINE_PINECONE_CLOUD', path: ['vectors', 'pinecone', 'cloud'], doc: 'Cloud of the serverless indexes the `pinecone` store creates: `aws`, `gcp` or `azure`. Default: `aws`.' },
  { env: 'FORGELINE_PINECONE_REGION', path: ['vectors', 'pinecone', 'region'], doc: 'Region of the serverless indexes the `pinecone` store creates. Default: `us-east-1`.' },
  { env: 'FORGELINE_MILVUS_ADDRESS', path: ['vectors', 'milvus', 'address'], doc: 'gRPC address of the Milvus proxy for the `milvus` vector store: `host:port`, e.g. `127.0.0.1:19530`, or `https://<endpoint>:443` for Zilliz Cloud / TLS.' },
  { env: 'FORGELINE_MILVUS_TOKEN', path: ['vectors', 'milvus', 'token'], secret: true, doc: 'Milvus credentials: `user:password`, or a Zilliz Cloud API key. Unset: a server without authentication.' },
  { env: 'FORGELINE_QDRANT_URL', path: ['vectors', 'qdrant', 'url'], doc: 'REST endpoint of Qdrant for the `qdrant` vector store, e.g. `http://localhost:6333` or `https://xyz.cloud.qdrant.io:6333`.' },
  { env: 'FORGELINE_QDRANT_API_KEY', path: ['vectors', 'qdrant', 'apiKey'], secret: true, doc: 'Qdrant API key (sent as the `api-key` header). Unset: no key.' },
];

/**
 * Variables Forgeline read before it followed Temporal's names. Setting one stops the process with
 * a message naming its replacement, so an mTLS setup never silently connects without its certificate.
 */
export const RENAMED_ENV: Readonly<Record<string, string>> = {
  TEMPORAL_TLS_CERT: 'TEMPORAL_TLS_CLIENT_CERT_PATH',
  TEMPORAL_TLS_KEY: 'TEMPORAL_TLS_CLIENT_KEY_PATH',
  TEMPORAL_TLS_CA: 'TEMPORAL_TLS_SERVER_CA_CERT_PATH',
};
