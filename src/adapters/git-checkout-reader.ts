/**
 * RepoReader over local Git checkouts the operator configures (FORGELINE_WEBHOOK_REPOS:
 * `owner/name=/path/to/checkout,...`). A file is read at the pushed commit with `git show
 * <sha>:<file>`, never from the work tree, so what runs is exactly what was pushed; a commit the
 * checkout does not have yet is fetched first (`git fetch origin`).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ConfigError } from '../ports/errors';
import type { RepoReader } from '../ports/repo-reader';

const run = promisify(execFile);
const SHA = /^[0-9a-f]{7,64}$/;

/** `owner/name=/abs/path,other/repo=/path` → map; a malformed entry is a ConfigError naming it. */
export function parseRepoMap(text: string | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const raw of (text ?? '').split(',')) {
    const entry = raw.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    const repo = eq > 0 ? entry.slice(0, eq).trim() : '';
    const dir = eq > 0 ? entry.slice(eq + 1).trim() : '';
    if (!/^[^/\s]+(\/[^/\s]+)+$/.test(repo) || !dir) {
      throw new ConfigError(`FORGELINE_WEBHOOK_REPOS: "${entry}" is not repo=path; expected e.g. acme/models=/srv/checkouts/models (GitLab: group/subgroup/project=/path)`);
    }
    map.set(repo, dir);
  }
  return map;
}

export class GitCheckoutReader implements RepoReader {
  constructor(private readonly checkouts: ReadonlyMap<string, string>) {}

  knows(repo: string): boolean {
    return this.checkouts.has(repo);
  }

  async readFile(repo: string, sha: string, file: string): Promise<string | undefined> {
    const dir = this.checkouts.get(repo);
    if (!dir) throw new ConfigError(`no checkout configured for ${repo}: add ${repo}=/path/to/checkout to FORGELINE_WEBHOOK_REPOS`);
    if (!SHA.test(sha)) throw new ConfigError(`not a commit SHA: ${sha}`);
    if (!(await this.hasCommit(dir, sha))) {
      await run('git', ['-C', dir, 'fetch', '--quiet', 'origin'], { timeout: 120_000 }).catch((err: Error) => {
        throw new ConfigError(`checkout ${dir} of ${repo} does not have commit ${sha} and git fetch failed: ${err.message.trim()}`);
      });
      if (!(await this.hasCommit(dir, sha))) throw new ConfigError(`checkout ${dir} of ${repo} does not have commit ${sha}, even after git fetch: is it a clone of ${repo}?`);
    }
    try {
      const { stdout } = await run('git', ['-C', dir, 'show', `${sha}:${file}`], { maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' });
      return stdout;
    } catch (err) {
      const msg = String((err as { stderr?: string }).stderr ?? (err as Error).message);
      if (/does not exist in|exists on disk, but not in/.test(msg)) return undefined;
      throw new Error(`git show ${sha}:${file} in ${dir}: ${msg.trim()}`, { cause: err });
    }
  }

  private async hasCommit(dir: string, sha: string): Promise<boolean> {
    return run('git', ['-C', dir, 'cat-file', '-e', `${sha}^{commit}`]).then(
      () => true,
      () => false,
    );
  }
}
