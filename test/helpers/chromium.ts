import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from '../../src/config/load';

const run = promisify(execFile);

let cached: string | undefined;

/**
 * Debian's chromium, installed by scripts/lib/chromium.sh when absent (apt-get, as root). Throws
 * with the command to run when it cannot be installed, so the test fails saying what to do.
 */
export function chromiumPath(): string {
  if (cached) return cached;
  const script = path.join(REPO_ROOT, 'scripts', 'lib', 'chromium.sh');
  try {
    cached = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15 * 60_000 }).trim().split('\n').at(-1)!;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`headless Chromium is needed for this test and could not be installed by ${script}: ${(e.stderr || e.message).trim()}`, { cause: err });
  }
  return cached;
}

/**
 * Launch flags from the environment notes: headless, no sandbox (root), no GPU, and no background
 * networking (this machine's network is closed; without these Chromium keeps dialling Google).
 */
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars'];

/** Render a local HTML file in headless Chromium: its DOM after load, and a PNG screenshot. */
export async function renderInChromium(file: string, opts: { width?: number; height?: number; screenshot: string }): Promise<{ dom: string }> {
  const bin = chromiumPath();
  const url = pathToFileURL(file).href;
  const profile = mkdtempSync(path.join(os.tmpdir(), 'forgeline-chromium-'));
  const size = `--window-size=${opts.width ?? 1100},${opts.height ?? 2400}`;
  try {
    // Separate runs: each uses a fresh profile directory of its own.
    const dom = await run(bin, [...FLAGS, `--user-data-dir=${profile}/dom`, '--dump-dom', url], { timeout: 180_000, maxBuffer: 64 * 1024 * 1024 });
    await run(bin, [...FLAGS, `--user-data-dir=${profile}/shot`, size, `--screenshot=${opts.screenshot}`, url], { timeout: 180_000 });
    return { dom: dom.stdout };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
