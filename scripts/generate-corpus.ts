/**
 * Generates the shipped retrieval quality set, examples/corpus/: the documentation of Kestrel, a
 * fictional self-hosted data synchronization service, as a few hundred short documents
 * (Markdown overviews and configuration pages, HTML troubleshooting pages, text FAQs and release
 * notes) under examples/corpus/docs/, and labelled queries in examples/corpus/queries.jsonl
 * (`{"query", "relevant": [document ids]}`; ids are paths relative to docs/).
 *
 * Deterministic: the same output on every run (a seeded generator picks the phrasing), so the
 * committed files are this script's output; rerun it after editing it:
 *
 *   npx tsx scripts/generate-corpus.ts
 *
 * Each feature has its own facts (a setting, an error, a command) that its pages and only its
 * pages state. Pages of one kind share their template, so neighbours in embedding space are
 * close: the queries, written in other words than the pages, measure whether retrieval still
 * finds the right one.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { mulberry32 } from '../src/drift/random';

interface Feature {
  slug: string;
  area: string;
  title: string;
  /** What it does, one sentence (completes "The <title> ..."). */
  does: string;
  setting: { key: string; default: string; meaning: string };
  error: { code: string; symptom: string; cause: string; fix: string };
  command: string;
  /** A question about the setting, in a user's words. */
  askSetting: string;
  /** A question about the error, describing the symptom, in a user's words. */
  askError: string;
}

const FEATURES: Feature[] = [
  { slug: 'change-capture', area: 'sources', title: 'Change capture', does: 'reads the write-ahead log of a PostgreSQL source and turns every committed row change into a sync event', setting: { key: 'capture.slot_name', default: 'kestrel_slot', meaning: 'the name of the logical replication slot Kestrel creates on the source database' }, error: { code: 'KST-1042', symptom: 'the replication slot keeps growing and the source disk fills up', cause: 'the capture worker stopped acknowledging log positions while a sink was paused', fix: 'resume the sink or drop the slot with kestrel capture drop-slot' }, command: 'kestrel capture status', askSetting: 'what is the replication slot called by default on postgres', askError: 'postgres disk is filling up because WAL is retained forever' },
  { slug: 'mysql-binlog', area: 'sources', title: 'MySQL binlog reader', does: 'follows the binary log of a MySQL or MariaDB server in row format and emits one event per changed row', setting: { key: 'binlog.server_id', default: '5401', meaning: 'the replica server id the reader presents to MySQL, which must be unique in the cluster' }, error: { code: 'KST-1107', symptom: 'the reader disconnects every few seconds with a duplicate replica message', cause: 'another replica uses the same server id', fix: 'give binlog.server_id a value no other replica uses' }, command: 'kestrel binlog position', askSetting: 'which server id does kestrel use when it connects to mysql as a replica', askError: 'mysql connection drops repeatedly saying a slave with the same id already connected' },
  { slug: 'file-drop', area: 'sources', title: 'File drop source', does: 'watches a directory or bucket for new CSV and Parquet files and loads each file exactly once', setting: { key: 'drop.poll_interval', default: '30s', meaning: 'how often the watched directory or bucket is listed for new files' }, error: { code: 'KST-1203', symptom: 'a file is loaded twice after a restart', cause: 'the file was renamed after it was loaded, so its fingerprint changed', fix: 'never rename files inside the drop folder; move finished files to an archive folder instead' }, command: 'kestrel drop ls', askSetting: 'how frequently are new csv files picked up from the folder', askError: 'after restarting the same parquet file got imported a second time' },
  { slug: 'webhook-ingest', area: 'sources', title: 'Webhook ingest', does: 'accepts JSON events posted over HTTPS and verifies their HMAC signature before queueing them', setting: { key: 'webhook.max_body_bytes', default: '1048576', meaning: 'the largest request body accepted, in bytes' }, error: { code: 'KST-1310', symptom: 'senders get HTTP 401 although the shared secret is right', cause: 'the sender signs the body after pretty-printing it, so the bytes differ', fix: 'sign the exact bytes that are sent, and check the clock skew is under five minutes' }, command: 'kestrel webhook test', askSetting: 'what is the biggest payload size the http endpoint accepts', askError: 'signature verification fails with unauthorized even though the secret matches' },
  { slug: 'kafka-source', area: 'sources', title: 'Kafka source', does: 'consumes one or more Kafka topics as a consumer group and commits offsets only after the sink confirms a batch', setting: { key: 'kafka.group_id', default: 'kestrel-<pipeline>', meaning: 'the consumer group the pipeline joins' }, error: { code: 'KST-1421', symptom: 'consumer lag grows while the pipeline reports no errors', cause: 'a rebalance loop: batches take longer than max.poll.interval.ms', fix: 'lower the batch size or raise kafka.max_poll_interval' }, command: 'kestrel kafka lag', askSetting: 'which consumer group name does the pipeline join on the broker', askError: 'topic lag keeps increasing and partitions keep getting reassigned' },
  { slug: 'snowflake-sink', area: 'sinks', title: 'Snowflake sink', does: 'stages batches as compressed files in an internal stage and merges them into target tables', setting: { key: 'snowflake.warehouse_size', default: 'XSMALL', meaning: 'the virtual warehouse size used for merge statements' }, error: { code: 'KST-2011', symptom: 'merges fail with a message that the warehouse is suspended', cause: 'auto-resume is disabled on the warehouse', fix: 'enable AUTO_RESUME on the warehouse or give Kestrel a warehouse of its own' }, command: 'kestrel snowflake merges', askSetting: 'what compute size is used for loading into snowflake', askError: 'loading into the data warehouse stops because compute is not running' },
  { slug: 'bigquery-sink', area: 'sinks', title: 'BigQuery sink', does: 'writes rows through the Storage Write API in committed mode, one stream per table', setting: { key: 'bigquery.location', default: 'US', meaning: 'the dataset location where temporary tables are created' }, error: { code: 'KST-2104', symptom: 'writes fail with a quota exceeded error at the top of every hour', cause: 'too many concurrent streams are opened for small tables', fix: 'set bigquery.shared_stream to true for tables under one million rows' }, command: 'kestrel bigquery streams', askSetting: 'in which region are the scratch tables created in google bigquery', askError: 'hourly spikes of quota errors when writing to google' },
  { slug: 'postgres-sink', area: 'sinks', title: 'PostgreSQL sink', does: 'applies changes with batched upserts keyed on the primary key, inside one transaction per batch', setting: { key: 'pg_sink.batch_rows', default: '5000', meaning: 'the number of rows applied in one transaction' }, error: { code: 'KST-2207', symptom: 'batches roll back with a deadlock detected error', cause: 'two pipelines write overlapping keys of the same table', fix: 'route each table through a single pipeline or enable pg_sink.lock_table' }, command: 'kestrel pg-sink stats', askSetting: 'how many rows go into each transaction when writing to postgres', askError: 'inserts into the target database abort because two transactions wait on each other' },
  { slug: 's3-archive', area: 'sinks', title: 'S3 archive sink', does: 'writes every event to object storage as hourly partitioned Parquet files for long-term retention', setting: { key: 'archive.partition_by', default: 'hour', meaning: 'the time granularity of the folder layout in the bucket' }, error: { code: 'KST-2315', symptom: 'thousands of tiny files appear in the bucket', cause: 'the flush interval is shorter than the time it takes to fill a row group', fix: 'raise archive.flush_interval to at least five minutes' }, command: 'kestrel archive compact', askSetting: 'are archived parquet files split per day or per hour', askError: 'the bucket is full of very small files' },
  { slug: 'elastic-sink', area: 'sinks', title: 'Elasticsearch sink', does: 'indexes documents with the bulk API and maps deletes in the source to deletes in the index', setting: { key: 'elastic.refresh', default: 'false', meaning: 'whether each bulk request waits for an index refresh' }, error: { code: 'KST-2409', symptom: 'bulk requests are rejected with status 429', cause: 'the cluster write thread pool queue is full', fix: 'reduce elastic.concurrency or add data nodes' }, command: 'kestrel elastic bulk-stats', askSetting: 'does indexing wait until documents are searchable', askError: 'search cluster answers too many requests during bulk loading' },
  { slug: 'schema-evolution', area: 'pipelines', title: 'Schema evolution', does: 'detects added, renamed and dropped columns in the source and applies the matching change to the sink', setting: { key: 'schema.on_drop', default: 'keep', meaning: 'what happens to a sink column when the source column is dropped' }, error: { code: 'KST-3012', symptom: 'the pipeline halts with an incompatible type change', cause: 'a source column changed from text to integer, which the sink cannot convert safely', fix: 'add a cast transform or approve the change with kestrel schema approve' }, command: 'kestrel schema diff', askSetting: 'if a column disappears upstream is it removed downstream too', askError: 'sync stopped after somebody altered a column from varchar to int' },
  { slug: 'transforms', area: 'pipelines', title: 'Transforms', does: 'runs SQL expressions or small WebAssembly functions on each event between source and sink', setting: { key: 'transform.timeout', default: '200ms', meaning: 'the longest a transform may run for one event' }, error: { code: 'KST-3108', symptom: 'events are sent to the dead letter queue with a timeout reason', cause: 'a WebAssembly transform makes a slow call per event', fix: 'cache lookups inside the module or raise transform.timeout' }, command: 'kestrel transform run', askSetting: 'how long can a wasm function take per record before it is aborted', askError: 'records end up in the dlq because user functions are too slow' },
  { slug: 'dead-letter', area: 'pipelines', title: 'Dead letter queue', does: 'keeps events a sink rejected, with the reason, so they can be inspected and replayed', setting: { key: 'dlq.retention', default: '14d', meaning: 'how long rejected events are kept before they are deleted' }, error: { code: 'KST-3203', symptom: 'replaying the dead letter queue rejects the same events again', cause: 'the underlying data problem was not fixed before the replay', fix: 'inspect the reasons with kestrel dlq show and fix the sink schema first' }, command: 'kestrel dlq replay', askSetting: 'how many days are failed records retained', askError: 'retrying failed events just fails them again' },
  { slug: 'backfill', area: 'pipelines', title: 'Backfill', does: 'copies the existing rows of a table before change capture starts, without locking the source', setting: { key: 'backfill.chunk_rows', default: '100000', meaning: 'the number of rows read per backfill query' }, error: { code: 'KST-3310', symptom: 'the initial copy of a large table never finishes', cause: 'the table has no primary key, so the backfill cannot read it in key ranges', fix: 'add a primary key or set backfill.order_by to a unique column' }, command: 'kestrel backfill progress', askSetting: 'how big is each read query during the initial snapshot', askError: 'the first full copy of a huge table without a primary key runs forever' },
  { slug: 'exactly-once', area: 'pipelines', title: 'Exactly-once delivery', does: 'records the last applied position in the sink itself so that a retried batch is never applied twice', setting: { key: 'delivery.mode', default: 'exactly_once', meaning: 'the delivery guarantee, exactly_once or at_least_once' }, error: { code: 'KST-3407', symptom: 'duplicate rows appear after a sink failover', cause: 'the progress table was not replicated to the new primary', fix: 'keep the kestrel_progress table in the same replication set as the data' }, command: 'kestrel delivery check', askSetting: 'can I switch to at least once semantics', askError: 'we got duplicated records after the target database failed over' },
  { slug: 'scheduler', area: 'pipelines', title: 'Scheduler', does: 'starts batch pipelines on cron expressions and skips a run when the previous one is still going', setting: { key: 'schedule.timezone', default: 'UTC', meaning: 'the time zone cron expressions are evaluated in' }, error: { code: 'KST-3502', symptom: 'a nightly job runs twice on the day clocks change', cause: 'the schedule uses a local time zone with daylight saving time', fix: 'use UTC or a cron time outside the changeover hour' }, command: 'kestrel schedule next', askSetting: 'which timezone are cron expressions interpreted in', askError: 'the nightly batch ran two times when daylight saving started' },
  { slug: 'rbac', area: 'security', title: 'Role-based access control', does: 'grants users and service accounts roles per project, from viewer to owner', setting: { key: 'rbac.default_role', default: 'viewer', meaning: 'the role new members of a project get' }, error: { code: 'KST-4010', symptom: 'a user can see a pipeline but cannot pause it', cause: 'pausing needs the operator role and the user is a viewer', fix: 'grant the operator role with kestrel access grant' }, command: 'kestrel access list', askSetting: 'what permissions does a newly invited team member get', askError: 'colleague can view the pipeline but the stop button is refused' },
  { slug: 'sso', area: 'security', title: 'Single sign-on', does: 'signs users in through an OpenID Connect or SAML identity provider and maps groups to roles', setting: { key: 'sso.group_claim', default: 'groups', meaning: 'the token claim that holds the user groups' }, error: { code: 'KST-4104', symptom: 'users sign in but land with no projects', cause: 'the identity provider does not send the groups claim', fix: 'add the groups claim to the ID token or change sso.group_claim' }, command: 'kestrel sso test', askSetting: 'which claim in the id token is read for group membership', askError: 'after logging in through okta nobody sees any project' },
  { slug: 'secrets', area: 'security', title: 'Secrets', does: 'stores connection passwords encrypted with a key from a KMS and never shows them after saving', setting: { key: 'secrets.kms_key', default: 'none (local key file)', meaning: 'the KMS key that wraps the data encryption key' }, error: { code: 'KST-4207', symptom: 'every connection fails after a restore from backup', cause: 'the restored database was encrypted with a KMS key the new installation cannot use', fix: 'grant the new installation decrypt permission on the original key' }, command: 'kestrel secrets rotate', askSetting: 'where does the master key for stored passwords come from', askError: 'restored from a backup and now all credentials cannot be decrypted' },
  { slug: 'audit-log', area: 'security', title: 'Audit log', does: 'records every change to pipelines, connections and access with who made it and when', setting: { key: 'audit.export', default: 'off', meaning: 'where audit entries are exported, off, syslog or a webhook' }, error: { code: 'KST-4302', symptom: 'the audit export webhook stops receiving entries', cause: 'the receiver returned errors for more than an hour and the export was suspended', fix: 'fix the receiver and resume with kestrel audit resume-export' }, command: 'kestrel audit tail', askSetting: 'can the history of who changed what be forwarded to syslog', askError: 'our siem stopped getting change records from the service' },
  { slug: 'tls', area: 'security', title: 'TLS certificates', does: 'serves the API and UI over TLS with certificates from a file or issued automatically by ACME', setting: { key: 'tls.acme_email', default: 'unset', meaning: 'the contact address used to register with the ACME certificate authority' }, error: { code: 'KST-4409', symptom: 'the browser warns that the certificate expired', cause: 'ACME renewal failed because port 80 is blocked for the HTTP challenge', fix: 'open port 80 or switch to the DNS challenge' }, command: 'kestrel tls renew', askSetting: 'which email is given to lets encrypt', askError: 'browser says the https certificate is out of date' },
  { slug: 'metrics', area: 'operations', title: 'Metrics', does: 'exposes Prometheus metrics for throughput, lag and errors of every pipeline', setting: { key: 'metrics.listen', default: ':9464', meaning: 'the address the metrics endpoint listens on' }, error: { code: 'KST-5008', symptom: 'Prometheus shows gaps in the lag graphs', cause: 'the scrape takes longer than the scrape timeout with thousands of tables', fix: 'enable metrics.aggregate_tables to report per pipeline instead of per table' }, command: 'kestrel metrics dump', askSetting: 'on which port can prometheus scrape the exporter', askError: 'grafana charts have holes because scraping is too slow' },
  { slug: 'alerting', area: 'operations', title: 'Alerting', does: 'sends alerts to Slack, PagerDuty or email when lag, error rate or freshness cross a threshold', setting: { key: 'alerts.freshness_threshold', default: '15m', meaning: 'how stale a table may get before a freshness alert fires' }, error: { code: 'KST-5103', symptom: 'the same alert is sent every minute', cause: 'the alert has no repeat interval and flaps around its threshold', fix: 'set a repeat interval and a recovery margin on the alert rule' }, command: 'kestrel alerts test', askSetting: 'after how long without new data do we get notified', askError: 'slack gets spammed with the same notification over and over' },
  { slug: 'logging', area: 'operations', title: 'Logging', does: 'writes structured JSON logs with a pipeline and batch id on every line', setting: { key: 'log.level', default: 'info', meaning: 'the least severe level that is written' }, error: { code: 'KST-5207', symptom: 'the log volume fills the disk within hours', cause: 'debug logging was left on for all pipelines', fix: 'set log.level back to info or enable it for one pipeline only' }, command: 'kestrel logs follow', askSetting: 'what verbosity do the logs have out of the box', askError: 'log files are eating all the disk space' },
  { slug: 'backup', area: 'operations', title: 'Backup and restore', does: 'backs up the metadata database and encrypted secrets to object storage on a schedule', setting: { key: 'backup.schedule', default: '0 2 * * *', meaning: 'the cron expression of the metadata backup' }, error: { code: 'KST-5302', symptom: 'a restore stops with a version mismatch', cause: 'the backup comes from a newer Kestrel release than the one restoring it', fix: 'restore with the same or a newer release, then downgrade if needed' }, command: 'kestrel backup create', askSetting: 'when does the nightly metadata backup run', askError: 'restoring an old snapshot complains that versions do not match' },
  { slug: 'upgrades', area: 'operations', title: 'Upgrades', does: 'upgrades a cluster node by node while pipelines keep running on the remaining nodes', setting: { key: 'upgrade.max_unavailable', default: '1', meaning: 'how many nodes may be down at the same time during an upgrade' }, error: { code: 'KST-5409', symptom: 'the upgrade pauses with a pending migration warning', cause: 'a metadata migration waits for all nodes to run the new release', fix: 'finish upgrading every node, then run kestrel upgrade finalize' }, command: 'kestrel upgrade plan', askSetting: 'how many servers can be offline at once during a rolling update', askError: 'rolling update is stuck waiting on a database migration' },
  { slug: 'high-availability', area: 'operations', title: 'High availability', does: 'runs three or more nodes that elect a leader and move pipelines off a failed node', setting: { key: 'ha.lease_duration', default: '15s', meaning: 'how long a node holds a pipeline lease without renewing it' }, error: { code: 'KST-5503', symptom: 'pipelines move between nodes every few minutes', cause: 'long garbage collection pauses make nodes miss lease renewals', fix: 'give nodes more memory or raise ha.lease_duration' }, command: 'kestrel cluster members', askSetting: 'after how many seconds is a silent node considered dead', askError: 'workloads keep hopping between cluster members' },
  { slug: 'resource-limits', area: 'operations', title: 'Resource limits', does: 'caps the memory and CPU each pipeline may use on a node', setting: { key: 'limits.pipeline_memory', default: '2GiB', meaning: 'the most memory one pipeline may hold in buffers' }, error: { code: 'KST-5608', symptom: 'a node is killed by the kernel out-of-memory killer', cause: 'the sum of the pipelines memory limits exceeds the node memory', fix: 'lower limits.pipeline_memory or move pipelines to another node' }, command: 'kestrel limits show', askSetting: 'how much ram can a single sync use', askError: 'the linux oom killer terminated the process' },
  { slug: 'cli', area: 'reference', title: 'Command line', does: 'manages pipelines, connections and the cluster from a terminal, with JSON output for scripts', setting: { key: 'cli.profile', default: 'default', meaning: 'the named profile in the CLI configuration file that selects server and token' }, error: { code: 'KST-6005', symptom: 'every command answers that the token is invalid', cause: 'the CLI uses a profile of another server', fix: 'pass --profile or set KESTREL_PROFILE to the right profile' }, command: 'kestrel config profiles', askSetting: 'how do I switch the terminal tool between staging and production servers', askError: 'all terminal commands fail with an authentication error' },
  { slug: 'rest-api', area: 'reference', title: 'REST API', does: 'exposes every operation of the UI as versioned JSON endpoints under /api/v2', setting: { key: 'api.rate_limit', default: '600/min', meaning: 'the number of API calls a token may make per minute' }, error: { code: 'KST-6102', symptom: 'scripts get HTTP 429 responses', cause: 'a script polls pipeline status in a tight loop', fix: 'use the events stream instead of polling, or lower the polling rate' }, command: 'kestrel api call', askSetting: 'how many requests per minute can an api token make', askError: 'automation script receives too many requests errors' },
  { slug: 'terraform', area: 'reference', title: 'Terraform provider', does: 'declares pipelines, connections and roles as Terraform resources', setting: { key: 'provider.endpoint', default: 'https://localhost:8443', meaning: 'the Kestrel server URL the provider talks to' }, error: { code: 'KST-6207', symptom: 'terraform plan always shows a change to the password field', cause: 'the server never returns secrets, so the provider cannot compare them', fix: 'mark the field with lifecycle ignore_changes or use a secret reference' }, command: 'kestrel export terraform', askSetting: 'what server url does the infrastructure as code plugin connect to', askError: 'every plan wants to update the connection password again' },
  { slug: 'sdk', area: 'reference', title: 'Python SDK', does: 'wraps the REST API in typed Python classes and streams pipeline events as an iterator', setting: { key: 'KESTREL_TIMEOUT', default: '30', meaning: 'the seconds the SDK waits for a response before raising' }, error: { code: 'KST-6301', symptom: 'the SDK raises a version error at import', cause: 'the SDK is older than the server API version', fix: 'upgrade the package with pip install --upgrade kestrel-sdk' }, command: 'kestrel sdk version', askSetting: 'how long does the python client wait for the server to answer', askError: 'importing the python library fails saying the api is not supported' },
  { slug: 'pricing', area: 'account', title: 'Plans and billing', does: 'bills by synced rows per month, with the first ten million rows free on every plan', setting: { key: 'billing.alert_rows', default: '80%', meaning: 'the share of the monthly row allowance at which billing admins are warned' }, error: { code: 'KST-7003', symptom: 'pipelines pause at the end of the month', cause: 'the row allowance of the plan was used up and overage is disabled', fix: 'enable overage or upgrade the plan' }, command: 'kestrel billing usage', askSetting: 'when do we get warned that we are close to our monthly quota', askError: 'syncs stopped near the end of the billing period' },
  { slug: 'workspaces', area: 'account', title: 'Workspaces', does: 'separates teams with their own pipelines, connections and members on one installation', setting: { key: 'workspace.max_pipelines', default: '50', meaning: 'the most pipelines a workspace may hold' }, error: { code: 'KST-7108', symptom: 'creating a pipeline fails with a limit reached message', cause: 'the workspace already has the maximum number of pipelines', fix: 'archive unused pipelines or raise workspace.max_pipelines' }, command: 'kestrel workspace info', askSetting: 'how many syncs can one team space contain', askError: 'cannot add a new pipeline because some maximum was hit' },
  { slug: 'data-masking', area: 'pipelines', title: 'Data masking', does: 'hashes, truncates or nulls columns tagged as personal data before they leave the source region', setting: { key: 'masking.salt', default: 'generated per project', meaning: 'the salt mixed into hashed values so they cannot be looked up in rainbow tables' }, error: { code: 'KST-3605', symptom: 'joins on a hashed email column stop matching across pipelines', cause: 'the pipelines belong to different projects and so use different salts', fix: 'set the same masking.salt on both projects' }, command: 'kestrel masking preview', askSetting: 'is the hashing of personal fields salted and where is the salt from', askError: 'pseudonymized customer ids no longer line up between two syncs' },
  { slug: 'network', area: 'operations', title: 'Private networking', does: 'reaches sources inside private networks through an outbound-only tunnel agent', setting: { key: 'tunnel.heartbeat', default: '10s', meaning: 'how often the tunnel agent reports that it is alive' }, error: { code: 'KST-5705', symptom: 'connections through the tunnel time out although the agent is running', cause: 'a corporate proxy closes idle long-lived connections', fix: 'set tunnel.keepalive below the proxy idle timeout' }, command: 'kestrel tunnel status', askSetting: 'how often does the on premise agent send a ping', askError: 'the reverse tunnel drops connections behind our company proxy' },
  { slug: 'deduplication', area: 'pipelines', title: 'Deduplication', does: 'drops repeated events with the same key and version inside a time window', setting: { key: 'dedup.window', default: '10m', meaning: 'how long seen keys are remembered to detect repeats' }, error: { code: 'KST-3709', symptom: 'memory use grows steadily on high-volume pipelines', cause: 'the deduplication window holds millions of keys', fix: 'shorten dedup.window or move the key store to disk with dedup.spill' }, command: 'kestrel dedup stats', askSetting: 'for how long are event ids remembered to filter repeats', askError: 'ram keeps climbing on our busiest stream' },
  { slug: 'cost-explorer', area: 'account', title: 'Cost explorer', does: 'breaks down warehouse credits and row usage by pipeline and table', setting: { key: 'costs.currency', default: 'USD', meaning: 'the currency estimates are shown in' }, error: { code: 'KST-7205', symptom: 'warehouse costs show as zero for every pipeline', cause: 'the warehouse account usage view is not shared with the Kestrel role', fix: 'grant the role access to the account usage schema' }, command: 'kestrel costs report', askSetting: 'can estimates be shown in euros instead of dollars', askError: 'the spending dashboard displays nothing for snowflake credits' },
  { slug: 'lineage', area: 'pipelines', title: 'Lineage', does: 'records which source columns feed which sink columns, including through transforms', setting: { key: 'lineage.openlineage_url', default: 'unset', meaning: 'an OpenLineage endpoint that receives lineage events' }, error: { code: 'KST-3802', symptom: 'the lineage graph is missing columns produced by transforms', cause: 'WebAssembly transforms do not declare their inputs', fix: 'declare inputs in the transform manifest' }, command: 'kestrel lineage graph', askSetting: 'where do I configure the marquez endpoint to send column provenance', askError: 'the dependency graph does not show fields computed by custom functions' },
];

/** A small seeded generator (mulberry32), so the output is the same on every run. */
export const rng = mulberry32;

const random = rng(20261203);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
const cap = (s: string) => s[0]!.toUpperCase() + s.slice(1);
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const INTROS = [
  (f: Feature) => `The ${f.title.toLowerCase()} component of Kestrel ${f.does}.`,
  (f: Feature) => `${f.title} is the part of Kestrel that ${f.does}.`,
  (f: Feature) => `In Kestrel, ${f.title.toLowerCase()} ${f.does}.`,
];
const GENERIC = [
  'Like every Kestrel component, it is configured in kestrel.yaml or through the UI, and changes take effect without a restart.',
  'It runs inside each pipeline worker, so it scales with the number of workers in the cluster.',
  'Its state is kept in the metadata database and survives restarts and failovers.',
  'All of its actions are visible in the pipeline timeline of the UI.',
  'The component reports its health on the status page and through the metrics endpoint.',
];

function overview(f: Feature, others: Feature[]): string {
  const related = others.map((o) => `- [${o.title}](../${o.slug}/overview.md): ${o.does}.`).join('\n');
  return `# ${f.title}

${pick(INTROS)(f)} ${pick(GENERIC)}

## How it works

${cap(f.does)}. ${pick(GENERIC)} Use \`${f.command}\` to see what it is doing right now.

## When to use it

Turn to ${f.title.toLowerCase()} when your pipeline needs it; the defaults suit most installations. The setting most people change is \`${f.setting.key}\`, ${f.setting.meaning}.

## Related

${related}
`;
}

function configuration(f: Feature): string {
  const [section, ...rest] = f.setting.key.includes('.') ? f.setting.key.split('.') : ['env', f.setting.key];
  return `# ${f.title}: configuration

${f.title} is configured in the \`${section}\` block of kestrel.yaml.

## Settings

| Setting | Default | Meaning |
| --- | --- | --- |
| \`${f.setting.key}\` | \`${f.setting.default}\` | ${cap(f.setting.meaning)}. |

## Example

\`\`\`yaml
${section}:
  ${rest.join('.') || f.setting.key}: ${f.setting.default}
\`\`\`

## Notes

${cap(f.setting.meaning)} defaults to ${f.setting.default}. ${pick(GENERIC)} Check the effective value with \`${f.command} --config\`.
`;
}

function troubleshooting(f: Feature): string {
  return `<!doctype html>
<html lang="en">
<head><title>${esc(f.title)}: troubleshooting</title><style>body { font-family: sans-serif; }</style></head>
<body>
<nav><a href="/docs">Docs</a> <a href="/docs/${f.area}">${esc(cap(f.area))}</a></nav>
<h1>${esc(f.title)}: troubleshooting</h1>
<p>This page lists known problems of ${esc(f.title.toLowerCase())} and how to fix them. Start with <code>${esc(f.command)}</code>.</p>
<h2>${f.error.code}</h2>
<h3>Symptom</h3>
<p>${esc(cap(f.error.symptom))}.</p>
<h3>Cause</h3>
<p>${esc(cap(f.error.cause))}.</p>
<h3>Fix</h3>
<p>${esc(cap(f.error.fix))}.</p>
<script>window.docsVersion = "4.2";</script>
</body>
</html>
`;
}

function faq(f: Feature): string {
  return `${f.title}: frequently asked questions

Q: What does ${f.title.toLowerCase()} do?
A: It ${f.does}.

Q: What does ${f.error.code} mean?
A: ${cap(f.error.symptom)}: ${f.error.cause}. To fix it, ${f.error.fix}.

Q: Where do I see its status?
A: Run ${f.command}, or open the pipeline in the UI.
`;
}

function releaseNotes(version: string, changed: Feature[]): string {
  const lines = changed.map((f) => `- ${f.title}: ${pick(['improved', 'faster', 'clearer errors for', 'new metrics for', 'documentation for'])} ${f.title.toLowerCase()}; ${f.command} ${pick(['gains a --json flag', 'shows more detail', 'is now faster', 'prints timestamps in UTC'])}.`);
  return `Kestrel ${version} release notes

Released as part of the regular monthly cycle. Upgrade node by node; no downtime is needed.

Changes
${lines.join('\n')}

Upgrade notes
Read the upgrade guide before upgrading a cluster with more than one node.
`;
}

export function generateCorpus(root: string): { documents: number; queries: number } {
  const docsDir = path.join(root, 'docs');
  rmSync(docsDir, { recursive: true, force: true });
  const files = new Map<string, string>();
  for (const f of FEATURES) {
    const others = [pick(FEATURES), pick(FEATURES)].filter((o, i, a) => o !== f && a.indexOf(o) === i);
    files.set(`${f.area}/${f.slug}/overview.md`, overview(f, others));
    files.set(`${f.area}/${f.slug}/configuration.md`, configuration(f));
    files.set(`${f.area}/${f.slug}/troubleshooting.html`, troubleshooting(f));
    files.set(`${f.area}/${f.slug}/faq.txt`, faq(f));
  }
  for (let minor = 0; minor < 40; minor++) {
    const version = `4.${Math.floor(minor / 10)}.${minor % 10}`;
    files.set(`release-notes/${version}.txt`, releaseNotes(version, [pick(FEATURES), pick(FEATURES), pick(FEATURES)]));
  }
  for (const [id, text] of files) {
    mkdirSync(path.dirname(path.join(docsDir, id)), { recursive: true });
    writeFileSync(path.join(docsDir, id), text);
  }
  const queries = FEATURES.flatMap((f) => [
    { query: f.askSetting, relevant: [`${f.area}/${f.slug}/configuration.md`] },
    { query: f.askError, relevant: [`${f.area}/${f.slug}/troubleshooting.html`, `${f.area}/${f.slug}/faq.txt`] },
  ]);
  writeFileSync(path.join(root, 'queries.jsonl'), queries.map((q) => JSON.stringify(q)).join('\n') + '\n');
  return { documents: files.size, queries: queries.length };
}

if (require.main === module) {
  const root = path.resolve(__dirname, '..', 'examples', 'corpus');
  const { documents, queries } = generateCorpus(root);
  console.log(`wrote ${documents} documents under ${path.relative(process.cwd(), root)}/docs and ${queries} queries in queries.jsonl`);
}
