import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/**
 * Writes one section of a results file shared by several benchmarks (bench/results/<file>.json),
 * keeping the other sections as they are: `{ benchmark, sections: { <name>: {...} } }`. Each
 * section carries its own machine, load and time, since sections are measured at different times.
 */
export function writeResultSection(file: string, section: string, value: object): string {
  const target = path.join(__dirname, 'results', `${file}.json`);
  let doc: { benchmark: string; sections: Record<string, unknown> } = { benchmark: file, sections: {} };
  if (existsSync(target)) doc = JSON.parse(readFileSync(target, 'utf8')) as typeof doc;
  doc.sections[section] = {
    ...value,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
    loadavg: os.loadavg().map((x) => round(x, 2)),
    measuredAt: new Date().toISOString(),
  };
  mkdirSync(path.dirname(target), { recursive: true });
  writeFileSync(target, JSON.stringify(doc, null, 1) + '\n');
  return target;
}
