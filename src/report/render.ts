/**
 * The release report as one self-contained HTML file: inline CSS and SVG, no script, nothing
 * fetched when it is viewed. Pure: data → string; every value from the data is escaped.
 */
import { escapeHtml as e, formatBytes, formatNumber, formatSigned, formatTime } from './format';
import { barChart, intervalChart, lineChart } from './svg';
import type { ReleaseReportData } from './types';

const CANDIDATE = '#1f6feb';
const COMPARATOR = '#8b949e';
const STABLE = '#8b949e';
const DELTA = '#d4a72c';
const VERDICT_COLOR: Record<string, string> = { Pass: '#1a7f37', Fail: '#cf222e', Inconclusive: '#9a6700' };

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:980px;color:#1f2328;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0;width:100%}th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#57606a}.empty{color:#57606a;font-style:italic}.chart{max-width:100%;height:auto;display:block;margin:8px 0}
.verdict{font-weight:600;padding:0 6px;border-radius:4px;color:#fff}
.Pass{background:#1a7f37}.Fail{background:#cf222e}.Inconclusive{background:#9a6700}
.yes{color:#1a7f37;font-weight:600}.no{color:#cf222e;font-weight:600}tr.decisive td{background:#fff8c5}
code{font-family:ui-monospace,monospace;font-size:12px}`;

export function renderReleaseReport(d: ReleaseReportData): string {
  const sections = [header(d), training(d), evaluation(d), quantization(d), canary(d), drift(d), trail(d)];
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${e(`Release report: ${d.model} (${d.releaseId})`)}</title>
<style>${CSS}</style></head>
<body>
${sections.join('\n')}
</body></html>
`;
}

function section(id: string, title: string, body: string): string {
  return `<section id="${id}"><h2>${e(title)}</h2>\n${body}\n</section>`;
}

const empty = (why: string) => `<p class="empty">${e(why)}</p>`;

function header(d: ReleaseReportData): string {
  const rows: Array<[string, string]> = [
    ['Release', `<code>${e(d.releaseId)}</code> (run <code>${e(d.runId)}</code>)`],
    ['Outcome', `<strong id="outcome">${e(d.outcome ?? d.executionStatus)}</strong>${d.failure ? `: ${e(d.failure)}` : ''}`],
    ['Workflow status', e(d.executionStatus)],
    ['Started', e(formatTime(d.startedAt))],
    ['Closed', e(d.closedAt ? formatTime(d.closedAt) : 'still running')],
    ...(d.gitSha ? [['Git', `<code>${e(d.gitSha)}</code>`] as [string, string]] : []),
  ];
  return `<header><h1>Release report: <span id="model">${e(d.model)}</span></h1>
<p class="meta">Generated ${e(formatTime(d.generatedAt))} from the workflow history${d.training.loss.length ? ' and the tracker run' : ''}.</p>
<table>${rows.map(([k, v]) => `<tr><th>${e(k)}</th><td>${v}</td></tr>`).join('')}</table></header>`;
}

function training(d: ReleaseReportData): string {
  const t = d.training;
  const facts = `<p>Steps: <strong>${e(formatNumber(t.totalSteps))}</strong> · final loss: <strong id="final-loss">${e(formatNumber(t.finalLoss))}</strong> · source: ${e(t.source)}</p>`;
  if (!t.loss.length) return section('training', 'Training loss', facts + empty('No loss curve was recorded for this release.'));
  const chart = lineChart({ title: 'Training loss per step', xLabel: 'step', yLabel: 'loss', series: [{ name: 'train/loss', color: CANDIDATE, points: t.loss.map((p) => ({ x: p.step, y: p.loss })) }] });
  return section('training', 'Training loss', facts + chart);
}

function evaluation(d: ReleaseReportData): string {
  const ev = d.evaluation;
  if (!ev) return section('evaluation', 'Evaluation', empty('The release did not reach evaluation.'));
  const rows = ev.metrics.map((m) => ({
    label: m.name,
    marks: [
      { name: 'candidate', color: CANDIDATE, value: m.value, ...(m.ci ? { ci: m.ci } : {}) },
      ...(m.delta !== undefined ? [{ name: ev.comparator, color: COMPARATOR, value: m.value - m.delta }] : []),
    ],
  }));
  const deltas = ev.metrics.filter((m) => m.delta !== undefined);
  const chart = ev.metrics.length ? intervalChart({ title: `Candidate vs ${ev.comparator}, 95% confidence intervals`, xLabel: 'metric value', rows }) : empty('The eval report has no metrics.');
  const deltaChart = deltas.length
    ? intervalChart({ title: `Candidate minus ${ev.comparator}, paired-bootstrap 95% CI`, xLabel: `Δ vs ${ev.comparator}`, rows: deltas.map((m) => ({ label: `Δ${m.name}`, marks: [{ name: 'Δ candidate − comparator', color: DELTA, value: m.delta!, ...(m.deltaCi ? { ci: m.deltaCi } : {}) }] })) })
    : '';
  const table =
    `<table id="eval-table"><tr><th>metric</th><th>candidate</th><th>95% CI</th><th>${e(ev.comparator)}</th><th>Δ</th><th>Δ 95% CI</th></tr>` +
    ev.metrics
      .map(
        (m) =>
          `<tr><td>${e(m.name)}</td><td class="num">${e(formatNumber(m.value))}</td><td class="num">${m.ci ? e(`${formatNumber(m.ci[0])} – ${formatNumber(m.ci[1])}`) : '–'}</td>` +
          `<td class="num">${m.delta !== undefined ? e(formatNumber(m.value - m.delta)) : '–'}</td><td class="num">${e(formatSigned(m.delta))}</td>` +
          `<td class="num">${m.deltaCi ? e(`${formatSigned(m.deltaCi[0])} – ${formatSigned(m.deltaCi[1])}`) : '–'}</td></tr>`,
      )
      .join('') +
    `</table>`;
  const gates = ev.gates.length
    ? `<h3>Gates</h3><table id="gates"><tr><th>gate</th><th>passed</th><th>result</th></tr>${ev.gates.map((g) => `<tr><td><code>${e(g.gate)}</code></td><td class="${g.passed ? 'yes' : 'no'}">${g.passed ? 'yes' : 'no'}</td><td>${e(g.reason)}</td></tr>`).join('')}</table>`
    : empty('No gates were configured.');
  return section('evaluation', `Evaluation: candidate vs ${ev.comparator}`, chart + deltaChart + table + gates);
}

function quantization(d: ReleaseReportData): string {
  const q = d.quantization;
  if (!q) return section('quantization', 'Quantization', empty('The release did not reach quantization.'));
  const ratio = q.sizeBeforeBytes > 0 ? q.sizeAfterBytes / q.sizeBeforeBytes : undefined;
  const chart = barChart({
    title: 'Model size before and after quantization',
    yLabel: 'bytes',
    bars: [
      { label: 'merged (before)', value: q.sizeBeforeBytes, color: COMPARATOR, text: formatBytes(q.sizeBeforeBytes) },
      { label: `${q.method}${q.bits ? ` ${q.bits}-bit` : ''} (after)`, value: q.sizeAfterBytes, color: CANDIDATE, text: formatBytes(q.sizeAfterBytes) },
    ],
  });
  const facts = `<p>Method <code>${e(q.method)}</code>${q.bits ? `, ${e(q.bits)}-bit` : ''}: <strong id="size-before">${e(formatBytes(q.sizeBeforeBytes))}</strong> → <strong id="size-after">${e(formatBytes(q.sizeAfterBytes))}</strong>${ratio !== undefined ? ` (${e(formatNumber(ratio * 100))}% of the original)` : ''}${q.seconds !== undefined ? ` in ${e(formatNumber(q.seconds))} s` : ''}.</p>`;
  return section('quantization', 'Quantization size', facts + chart);
}

function canary(d: ReleaseReportData): string {
  const c = d.canary;
  if (!c || !c.steps.length) return section('canary', 'Canary', empty(c ? 'The canary recorded no analysis.' : 'No canary: the release had no serving section or did not reach it.'));
  const metricNames = [...new Set(c.steps.flatMap((s) => s.metrics.map((m) => m.metric)))];
  const charts = metricNames
    .map((name) => {
      const pts = (side: 'stable' | 'candidate') =>
        c.steps.flatMap((s, i) => {
          const m = s.metrics.find((x) => x.metric === name);
          return m && m[side] !== null ? [{ x: i + 1, y: m[side]!, label: `${formatNumber(m[side])} at step ${s.step} (${s.weight}%), ${m.verdict}` }] : [];
        });
      return lineChart({
        title: `${name}: stable vs candidate per analysis`,
        xLabel: 'analysis (step, bake) in order',
        yLabel: name,
        series: [
          { name: `stable ${c.stable}`, color: STABLE, points: pts('stable') },
          { name: `candidate ${c.candidate}`, color: CANDIDATE, points: pts('candidate') },
        ],
        xTicks: c.steps.map((_, i) => i + 1),
        xFormat: (x) => {
          const s = c.steps[Math.round(x) - 1];
          return s ? `step ${s.step} @${formatNumber(s.weight)}%${s.bake > 1 ? ` bake ${s.bake}` : ''}` : '';
        },
      });
    })
    .join('');
  const table =
    `<table id="canary-table"><tr><th>step</th><th>weight</th><th>bake</th><th>verdict</th><th>metric figures (stable → candidate, p)</th><th>analysis</th><th>at</th></tr>` +
    c.steps
      .map(
        (s) =>
          `<tr><td class="num">${s.step}</td><td class="num">${e(formatNumber(s.weight))}%</td><td class="num">${s.bake}</td><td><span class="verdict ${e(s.verdict)}" style="background:${VERDICT_COLOR[s.verdict] ?? '#57606a'}">${e(s.verdict)}</span></td>` +
          `<td>${s.metrics.map((m) => `${e(m.metric)}: ${e(formatNumber(m.stable))} → ${e(formatNumber(m.candidate))}, p=${e(formatNumber(m.pValue))} <span class="verdict ${e(m.verdict)}">${e(m.verdict)}</span>`).join('<br>')}</td>` +
          `<td>${e(s.summary)}</td><td>${e(formatTime(s.at))}</td></tr>`,
      )
      .join('') +
    `</table>`;
  return section('canary', `Canary${c.alias ? ` of ${c.alias}` : ''}: ${c.candidate} vs ${c.stable}`, charts + table);
}

function drift(d: ReleaseReportData): string {
  const dr = d.drift;
  if (!dr) return section('drift', 'Drift over time', empty('No drift monitor ran for this release.'));
  if (!dr.checks.length) return section('drift', 'Drift over time', empty(`Drift monitor ${dr.monitorWorkflowId} has recorded no check yet.`));
  const scored = dr.checks.filter((c) => c.score !== undefined);
  const t = (iso: string) => new Date(iso).getTime();
  const series = [
    ...(scored.length ? [{ name: `input drift (${scored[0]!.method ?? 'score'})`, color: CANDIDATE, points: scored.map((c) => ({ x: t(c.at), y: c.score! })) }] : []),
    ...(scored.some((c) => c.threshold !== undefined) ? [{ name: 'threshold', color: '#cf222e', dashed: true, points: scored.filter((c) => c.threshold !== undefined).map((c) => ({ x: t(c.at), y: c.threshold! })) }] : []),
    { name: 'error rate', color: DELTA, points: dr.checks.map((c) => ({ x: t(c.at), y: c.errorRate })) },
  ];
  const chart = lineChart({ title: 'Drift checks over time', xLabel: 'time (UTC)', yLabel: 'score / rate', series, xFormat: (x) => new Date(x).toISOString().slice(5, 16).replace('T', ' ') });
  const table =
    `<table id="drift-table"><tr><th>at</th><th>samples</th><th>input drift</th><th>error rate</th><th>breaches</th></tr>` +
    dr.checks
      .map((c) => `<tr><td>${e(formatTime(c.at))}</td><td class="num">${c.samples}</td><td class="num">${c.score !== undefined ? e(`${formatNumber(c.score)} / ${formatNumber(c.threshold)}`) : '–'}</td><td class="num">${e(formatNumber(c.errorRate))}</td><td>${c.inconclusive ? 'inconclusive (too few samples)' : c.breaches.length ? `<span class="no">${e(c.breaches.join(', '))}</span>` : 'none'}</td></tr>`)
      .join('') +
    `</table>`;
  return section('drift', 'Drift over time', `<p>Monitor <code>${e(dr.monitorWorkflowId)}</code>.</p>` + chart + table);
}

function trail(d: ReleaseReportData): string {
  if (!d.trail.length) return section('decision-trail', 'Decision trail', empty('The history holds no decision.'));
  const rows = d.trail
    .map(
      (t) =>
        `<tr class="${t.decisive ? 'decisive' : ''}" data-kind="${e(t.kind)}"><td>${e(formatTime(t.at))}</td><td>${e(t.kind)}</td><td>${e(t.title)}</td><td class="by">${e(t.by ?? '')}</td><td>${e(t.reason ?? '')}</td><td>${e(t.result ?? '')}</td></tr>`,
    )
    .join('');
  return section(
    'decision-trail',
    'Decision trail',
    `<p class="meta">Read from the workflow history: operators' Updates and Signals (with who and why), the gate verdict and each canary analysis, in order. Highlighted rows decided the release's course.</p>` +
      `<table id="trail"><tr><th>when</th><th>kind</th><th>what</th><th>who</th><th>why</th><th>result</th></tr>${rows}</table>`,
  );
}
