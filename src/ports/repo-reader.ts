/**
 * Reads a file of a Git repository at one commit: the webhook receiver reads the pushed
 * repository's `forgeline.yaml` and the spec files it names, at the pushed SHA, through this port.
 * Default adapter: a local checkout per repository (src/adapters/git-checkout-reader.ts).
 */
export interface RepoReader {
  /** Does this reader know `repo` (`owner/name`)? A delivery for an unknown repository is ignored. */
  knows(repo: string): boolean;
  /** The text of `file` (a path relative to the repository root) at commit `sha`; undefined when the commit has no such file. */
  readFile(repo: string, sha: string, file: string): Promise<string | undefined>;
}
