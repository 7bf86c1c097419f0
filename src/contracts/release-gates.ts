import type { Gate } from './release-spec';

/** One metric of an eval report, as the evaluate recipe reports it for the candidate. */
export interface MetricEstimate {
  value: number;
  /** 95% bootstrap confidence interval of the value. */
  ci?: [number, number];
  /** Candidate minus comparator, with its paired-bootstrap CI, when a comparator was scored. */
  delta?: number;
  deltaCi?: [number, number];
}

export interface GateInput {
  metrics: Record<string, MetricEstimate>;
}

export interface GateResult {
  gate: string;
  passed: boolean;
  actual?: number;
  reason: string;
}

export interface GateVerdict {
  passed: boolean;
  results: GateResult[];
}

export function describeGate(g: Gate): string {
  return `${g.on === 'delta' ? 'Δ' : ''}${g.metric} ${g.op} ${g.threshold}`;
}

function compare(actual: number, op: Gate['op'], threshold: number): boolean {
  switch (op) {
    case '>=':
      return actual >= threshold;
    case '>':
      return actual > threshold;
    case '<=':
      return actual <= threshold;
    case '<':
      return actual < threshold;
  }
}

const NEGATION: Record<Gate['op'], string> = { '>=': '<', '>': '<=', '<=': '>', '<': '>=' };

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/\.?0+$/, '');
}

/**
 * Evaluate release gates against an eval report. Pure and deterministic: it runs inside the
 * workflow, so the decision and its reasons are part of the history. A metric the report lacks
 * fails its gate (a gate nobody can check must not pass silently).
 */
export function evaluateGates(report: GateInput, gates: readonly Gate[]): GateVerdict {
  const results = gates.map((g): GateResult => {
    const name = describeGate(g);
    const m = report.metrics[g.metric];
    const actual = m === undefined ? undefined : g.on === 'delta' ? m.delta : m.value;
    if (actual === undefined || !Number.isFinite(actual)) {
      const what = m === undefined ? `metric ${g.metric} is not in the eval report` : g.on === 'delta' ? `no comparator delta for ${g.metric}` : `${g.metric} is not a finite number`;
      return { gate: name, passed: false, reason: `${what} (gate ${name})` };
    }
    const passed = compare(actual, g.op, g.threshold);
    const label = `${g.on === 'delta' ? 'Δ' : ''}${g.metric} ${fmt(actual)}`;
    return {
      gate: name,
      passed,
      actual,
      reason: passed ? `${label} ${g.op} ${fmt(g.threshold)}` : `${label} ${NEGATION[g.op]} ${fmt(g.threshold)} (gate ${name})`,
    };
  });
  return { passed: results.every((r) => r.passed), results };
}
