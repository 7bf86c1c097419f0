import type { RouteTargets, RoutingTable, TrafficSample, VersionMetrics } from '../contracts/routing';

/**
 * Traffic routing in front of the serving backends: our gateway (src/gateway) through its
 * authenticated admin API; Gateway API / KServe traffic splits later. The routing table changes
 * atomically by compare-and-swap on its version, so two writers never lose an update and a
 * retried activity that already applied its change sees it applied.
 */
export interface TrafficRouter {
  /** The whole table and its version. */
  getTable(): Promise<RoutingTable>;
  /**
   * Set one public model alias's targets. With `expectedVersion`, fails with a conflict unless the
   * table is still at that version. Returns the new table.
   */
  setRoute(alias: string, targets: RouteTargets, opts?: { expectedVersion?: number; by?: string; reason?: string }): Promise<RoutingTable>;
  /** Register or change an upstream: the replica base URLs a route's versions may be served from. */
  setUpstream(name: string, urls: string[], opts?: { expectedVersion?: number; by?: string; reason?: string }): Promise<RoutingTable>;
  /** Remove an upstream no route uses (absent already: no change). Refused while a route uses it. */
  deleteUpstream(name: string, opts?: { by?: string; reason?: string }): Promise<RoutingTable>;
  /** Per-version request metrics over a time window (ms since epoch, [from, to)). */
  metrics(alias: string, window: { from: number; to: number }): Promise<VersionMetrics[]>;
  /** Recent requests' prompts and answers for drift checks (sampled, bounded by `limit`). */
  traffic(alias: string, window: { from: number; to: number; limit: number }): Promise<TrafficSample[]>;
}

/** The table moved since the version a change was based on. Retryable: re-read and decide again. */
export class RouteConflictError extends Error {
  constructor(
    /** The alias or upstream the change was for. */
    readonly alias: string,
    readonly expectedVersion: number | undefined,
    readonly current: RoutingTable | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'RouteConflictError';
  }
}
