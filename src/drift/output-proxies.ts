/**
 * Output proxies for the drift monitor: cheap signals of the answers' quality that need no
 * labels. Pure functions (no I/O), deterministic, on the gateway's traffic samples.
 */
import type { TrafficSample } from '../contracts/routing';

/** Answers that open with a refusal ("I'm sorry, but I can't ...", "As an AI ..."), case-insensitive. */
export const DEFAULT_REFUSAL_PATTERNS: readonly RegExp[] = [
  /^\W*(i'?m|i am) (sorry|afraid|unable|not able)\b/i,
  /^\W*i (cannot|can ?not|can'?t|won'?t|will not|must decline|do not|don'?t) (help|assist|provide|comply|answer|do that|share|fulfil|fulfill)/i,
  /^\W*(sorry|unfortunately),? (but )?i (cannot|can'?t|am unable|'m unable)/i,
  /^\W*as an ai\b/i,
];

/** Empty or whitespace-only. */
export function isEmptyAnswer(text: string): boolean {
  return text.trim().length === 0;
}

export function isRefusal(text: string, patterns: readonly RegExp[] = DEFAULT_REFUSAL_PATTERNS): boolean {
  return patterns.some((p) => p.test(text));
}

function share(xs: readonly string[], pred: (s: string) => boolean): number | null {
  if (xs.length === 0) return null;
  let n = 0;
  for (const x of xs) if (pred(x)) n++;
  return n / xs.length;
}

/** Share of empty answers; null without answers. */
export function shareEmpty(answers: readonly string[]): number | null {
  return share(answers, isEmptyAnswer);
}

/** Share of refusals; null without answers. */
export function shareRefused(answers: readonly string[], patterns: readonly RegExp[] = DEFAULT_REFUSAL_PATTERNS): number | null {
  return share(answers, (a) => isRefusal(a, patterns));
}

/** Mean length in characters (Unicode code points) and in whitespace-separated words; null without answers. */
export function meanLength(answers: readonly string[]): { chars: number; words: number } | null {
  if (answers.length === 0) return null;
  let chars = 0;
  let words = 0;
  for (const a of answers) {
    chars += [...a].length;
    words += a.split(/\s+/).filter((w) => w !== '').length;
  }
  return { chars: chars / answers.length, words: words / answers.length };
}

/** Mean of the finite feedback scores; null without any. */
export function meanFeedback(scores: readonly (number | undefined)[]): number | null {
  const xs = scores.filter((s): s is number => typeof s === 'number' && Number.isFinite(s));
  return xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export interface OutputProxies {
  samples: number;
  /** Share of requests that failed (HTTP status >= 400 or 0 for no response). */
  errorRate: number | null;
  /** Over the answered requests (status < 400): */
  emptyShare: number | null;
  refusedShare: number | null;
  meanLength: { chars: number; words: number } | null;
  meanFeedback: number | null;
  feedbackCount: number;
}

/** All proxies of a window of traffic samples. */
export function outputProxies(samples: readonly TrafficSample[], patterns: readonly RegExp[] = DEFAULT_REFUSAL_PATTERNS): OutputProxies {
  const answered = samples.filter((s) => s.status > 0 && s.status < 400).map((s) => s.completion);
  const feedback = samples.map((s) => s.feedback).filter((f): f is number => typeof f === 'number' && Number.isFinite(f));
  return {
    samples: samples.length,
    errorRate: samples.length === 0 ? null : (samples.length - answered.length) / samples.length,
    emptyShare: shareEmpty(answered),
    refusedShare: shareRefused(answered, patterns),
    meanLength: meanLength(answered),
    meanFeedback: meanFeedback(feedback),
    feedbackCount: feedback.length,
  };
}
