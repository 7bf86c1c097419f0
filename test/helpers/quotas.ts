import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** A quota file of `pool` (`gpus` GPUs) with teams a (priority 10, nominal `a`) and b (nominal `b`). */
export function quotaYaml(pool: string, gpus: number, a: number, b: number): string {
  return `version: 1\npools:\n  ${pool}: { gpus: ${gpus} }\nteams:\n  a:\n    priority: 10\n    quotas:\n      ${pool}: { nominal: ${a} }\n  b:\n    quotas:\n      ${pool}: { nominal: ${b} }\n`;
}

/** `text` written to a quotas.yaml in a new temporary directory; returns its path. */
export function writeQuotaFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'forgeline-quotas-')), 'quotas.yaml');
  writeFileSync(file, text);
  return file;
}
