import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../src/config/load';

/** The venv's Python (scripts/bootstrap makes it; FORGELINE_VENV overrides), else `python3` from PATH. */
export function venvPython(): string {
  const venv = process.env.FORGELINE_VENV ?? path.join(REPO_ROOT, '.venv');
  const bin = path.join(venv, 'bin', 'python');
  return existsSync(bin) ? bin : 'python3';
}

/** True while `pid` is a live process (a zombie counts as dead: it runs no code). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}
