import type { PromptRouteTargets, RouteTargets, RoutingTable, TrafficSample, VersionMetrics } from '../contracts/routing';

/** Options of a routing table change: compare-and-swap on the table version, and the audit fields. */
export interface RouteChangeOptions {
  /** Fail with a RouteConflictError unless the table is still at this version. */
  expectedVersion?: number;
  /** Who made the change (the table's `updatedBy`). */
  by?: string;
  /** Why (the table's `reason`). */
  reason?: string;
}

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
  setRoute(alias: string, targets: RouteTargets, opts?: RouteChangeOptions): Promise<RoutingTable>;
  /** Register or change an upstream: the replica base URLs a route's versions may be served from. */
  setUpstream(name: string, urls: string[], opts?: RouteChangeOptions): Promise<RoutingTable>;
  /** Remove an upstream no route uses (absent already: no change). Refused while a route uses it. */
  deleteUpstream(name: string, opts?: { by?: string; reason?: string }): Promise<RoutingTable>;
  /** Per-version request metrics over a time window (ms since epoch, [from, to)). */
  metrics(alias: string, window: { from: number; to: number }): Promise<VersionMetrics[]>;
  /** Recent requests' prompts and answers for drift checks (sampled, bounded by `limit`). */
  traffic(alias: string, window: { from: number; to: number; limit: number }): Promise<TrafficSample[]>;
  /**
   * Set one prompt's weighted prompt versions (all bound to one model alias, which must have a
   * model route). Compare-and-swap like setRoute: with `expectedVersion`, a RouteConflictError
   * unless the table is still at that version. Returns the new table.
   */
  setPromptRoute(name: string, targets: PromptRouteTargets, opts?: RouteChangeOptions): Promise<RoutingTable>;
  /**
   * Remove a prompt's route (absent already: no change, returns the table). With
   * `expectedVersion`, a RouteConflictError unless the table is still at that version.
   */
  deletePromptRoute(name: string, opts?: RouteChangeOptions): Promise<RoutingTable>;
  /** Per prompt version (`<name>@<12-hex>` in `version`) request metrics over [from, to), ms since epoch. */
  promptMetrics(name: string, window: { from: number; to: number }): Promise<VersionMetrics[]>;
  /** Recent prompt requests (rendered prompt text and answer), per prompt version label; sampled, bounded by `limit`. */
  promptTraffic(name: string, window: { from: number; to: number; limit: number }): Promise<TrafficSample[]>;
}

/** The table moved since the version a change was based on. Retryable: re-read and decide again. */
export class RouteConflictError extends Error {
  constructor(
    /** The alias, upstream or prompt the change was for. */
    readonly alias: string,
    readonly expectedVersion: number | undefined,
    readonly current: RoutingTable | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'RouteConflictError';
  }
}
