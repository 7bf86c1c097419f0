/**
 * RepoReader over GitHub's REST API (contents endpoint with `ref`), for repositories the receiver
 * has no checkout of: `GET /repos/{owner}/{repo}/contents/{path}?ref={sha}` with the raw media type,
 * so the body is the file itself (up to 100 MB) rather than base64 JSON.
 */
import { ConfigError } from '../ports/errors';
import type { RepoReader } from '../ports/repo-reader';

export interface GitHubContentsReaderOptions {
  /** Repositories (`owner/name`) this reader serves. */
  repos: Iterable<string>;
  /** A token with contents:read on those repositories (fine-grained PAT or GitHub App installation token). */
  token?: string;
  /** Default https://api.github.com; GitHub Enterprise Server: https://<host>/api/v3. */
  apiUrl?: string;
  timeoutMs?: number;
}

export class GitHubContentsReader implements RepoReader {
  private readonly repos: Set<string>;
  private readonly apiUrl: string;
  constructor(private readonly opts: GitHubContentsReaderOptions) {
    this.repos = new Set(opts.repos);
    this.apiUrl = (opts.apiUrl ?? 'https://api.github.com').replace(/\/+$/, '');
  }

  knows(repo: string): boolean {
    return this.repos.has(repo);
  }

  async readFile(repo: string, sha: string, file: string): Promise<string | undefined> {
    if (!this.repos.has(repo)) throw new ConfigError(`${repo} is not read through the GitHub API: add ${repo}=github to FORGELINE_WEBHOOK_REPOS`);
    const [owner, name] = repo.split('/');
    const url = `${this.apiUrl}/repos/${encodeURIComponent(owner!)}/${encodeURIComponent(name!)}/contents/${file.split('/').map(encodeURIComponent).join('/')}?ref=${encodeURIComponent(sha)}`;
    const res = await fetch(url, {
      headers: {
        accept: 'application/vnd.github.raw+json',
        'x-github-api-version': '2022-11-28',
        'user-agent': 'forgeline-webhooks',
        ...(this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {}),
      },
      signal: AbortSignal.timeout(this.opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    if (res.status === 200) return text;
    if (res.status === 404) {
      // A missing file, or a repository the token cannot see (GitHub answers 404 for both).
      return undefined;
    }
    if (res.status === 401 || res.status === 403) throw new ConfigError(`GitHub API ${res.status} reading ${file} of ${repo}@${sha}: check FORGELINE_GITHUB_TOKEN (it needs contents:read on ${repo}): ${text.slice(0, 200)}`);
    throw new Error(`GitHub API ${res.status} reading ${file} of ${repo}@${sha}: ${text.slice(0, 200)}`);
  }
}
