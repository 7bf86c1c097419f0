/**
 * The webhook receiver's RepoReader from the configuration: FORGELINE_WEBHOOK_REPOS maps each
 * repository to a local checkout (`owner/name=/path`) or to the GitHub API (`owner/name=github`).
 */
import type { ForgelineConfig } from '../config/schema';
import type { RepoReader } from '../ports/repo-reader';
import { GitCheckoutReader, parseRepoMap } from './git-checkout-reader';
import { GitHubContentsReader } from './github-contents-reader';

/** Routes each repository to the reader configured for it. */
export class RoutingRepoReader implements RepoReader {
  constructor(private readonly readers: readonly RepoReader[]) {}
  knows(repo: string): boolean {
    return this.readers.some((r) => r.knows(repo));
  }
  readFile(repo: string, sha: string, file: string): Promise<string | undefined> {
    const reader = this.readers.find((r) => r.knows(repo));
    if (!reader) return Promise.resolve(undefined);
    return reader.readFile(repo, sha, file);
  }
}

export function repoReaderFor(cfg: Pick<ForgelineConfig, 'webhook'>): { reader: RepoReader; repos: string[] } {
  const map = parseRepoMap(cfg.webhook.repos);
  const viaApi = [...map].filter(([, v]) => v === 'github').map(([repo]) => repo);
  const checkouts = new Map([...map].filter(([, v]) => v !== 'github'));
  return {
    reader: new RoutingRepoReader([new GitCheckoutReader(checkouts), new GitHubContentsReader({ repos: viaApi, token: cfg.webhook.githubToken, apiUrl: cfg.webhook.githubApiUrl })]),
    repos: [...map.keys()],
  };
}
