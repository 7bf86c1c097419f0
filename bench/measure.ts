import { readFileSync } from 'node:fs';

/** Shared by the benchmarks: percentiles by the nearest-rank rule, rounding, and process CPU time. */

/** The p-th percentile of an ascending array (nearest rank); NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * CPU time (user + system, ms) that process `pid` has used so far, from /proc (Linux, 100 ticks a
 * second); undefined where that cannot be read.
 */
export function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}
