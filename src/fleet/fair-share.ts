/**
 * The GPU admission policy (Kueue's nominal / borrowing / lending model) lives in
 * src/contracts/fair-share.ts, because the admission workflow runs it and workflow code imports
 * only contracts; this module is its name for fleet tooling (benchmarks, simulations).
 */
export * from '../contracts/fair-share';
