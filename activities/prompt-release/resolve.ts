import { ApplicationFailure } from '@temporalio/activity';
import type { z } from 'zod';
import { ErrorType } from '../../src/contracts/errors';
import type { PromptSpec } from '../../src/contracts/prompt';
import { parsePromptTestSet } from '../../src/contracts/prompt-eval';
import {
  changedPrompts,
  promptFolder,
  PROMPT_FILE,
  PromptReleaseRequestSchema,
  RELEASE_FILE,
  type PromptReleasePush,
  type PromptReleaseRequestInput,
  type ValidatedPromptRelease,
} from '../../src/contracts/prompt-release';
import { formatProblems, validateSpec } from '../../src/contracts/validate';
import type { RepoReader } from '../../src/ports/repo-reader';
import { readPromptFile, readPromptReleaseFiles, type ReleaseFileReader } from '../../src/prompts/release-files';
import { promptDigest } from '../../src/registry/prompt-registry';
import type { ActivityDeps } from '../deps';

const invalid = (message: string, problems: string[] = [message]): never => {
  throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidSpec, { problems });
};

export function createPromptResolveActivities(deps: Pick<ActivityDeps, 'repos'>) {
  const reader = (): RepoReader => deps.repos ?? invalid('this control worker has no repository reader: set FORGELINE_WEBHOOK_REPOS (owner/name=/path/to/checkout or owner/name=github) on the control worker, as on the webhook receiver');
  const readAt = async (repo: string, sha: string, file: string): Promise<string | undefined> => {
    const r = reader();
    if (!r.knows(repo)) invalid(`repository ${repo} is not configured on this control worker: add it to FORGELINE_WEBHOOK_REPOS`);
    return r.readFile(repo, sha, file);
  };

  return {
    /**
     * Control queue, a push's first step: for each `prompts/<name>/` folder the push changed, read
     * `release.yaml`, the prompt file it names (default `prompt.yaml`) and its test set at the
     * commit, and validate them all. Any problem in any prompt fails the push's release, naming file,
     * field and line, before any prompt's release starts. A folder whose files were all removed is
     * skipped (nothing to release).
     */
    async resolvePromptReleases(push: PromptReleasePush): Promise<{ releases: PromptReleaseRequestInput[]; skipped: string[] }> {
      const at = `${push.repo}@${push.sha.slice(0, 12)}`;
      const names = changedPrompts(push.paths ?? []);
      if (names.length === 0) invalid(`no prompts/<name>/ folder among the ${push.paths?.length ?? 0} changed path(s) of ${at}: a prompt release needs prompts/<name>/release.yaml (check the lifecycle's paths in forgeline.yaml)`);
      const files: ReleaseFileReader = { read: (file) => readAt(push.repo, push.sha, file), at };
      const problems: string[] = [];
      const releases: PromptReleaseRequestInput[] = [];
      const skipped: string[] = [];
      for (const name of names) {
        const dir = promptFolder(name);
        const releaseFile = `${dir}/${RELEASE_FILE}`;
        if ((await files.read(releaseFile)) === undefined) {
          if ((await files.read(`${dir}/${PROMPT_FILE}`)) === undefined) skipped.push(`${name}: ${dir}/ has neither ${RELEASE_FILE} nor ${PROMPT_FILE} at ${at} (removed): nothing to release`);
          else problems.push(`${releaseFile}: does not exist at ${at}: add it next to ${PROMPT_FILE} (evaluation, canary, approval; see README "Prompt releases")`);
          continue;
        }
        const release = await readPromptReleaseFiles(releaseFile, files, problems);
        if (release) releases.push({ ...release, git: { repo: push.repo, ref: push.ref, sha: push.sha } });
      }
      if (problems.length) invalid(`invalid prompt release files at ${at} (nothing was started):\n${problems.map((p) => `  - ${p}`).join('\n')}`, problems);
      return { releases, skipped };
    },

    /**
     * Control queue, every prompt release's first step: the spec validated again (a release started
     * by hand in the UI fails like the CLI), the prompt and test set read at the commit when given
     * as files, the test set parsed, and the version the prompt publishes as.
     */
    async validatePromptRelease(raw: unknown): Promise<ValidatedPromptRelease> {
      const v = validateSpec(PromptReleaseRequestSchema, raw);
      if (!v.ok) invalid(formatProblems('prompt release spec', v.problems), v.problems);
      const request = (v as { value: z.output<typeof PromptReleaseRequestSchema> }).value;
      const { source, testSet, git, ...spec } = request;
      const needGit = (what: string) =>
        git ?? invalid(`${what} is a file, but the release has no git commit to read it at: start it from a push (webhook), or with \`forgeline prompt release <release.yaml>\`, which inlines the files`);
      let prompt: PromptSpec;
      const file = (source as { file?: string }).file;
      if (typeof file === 'string') {
        const g = needGit(`source.file (${file})`);
        const problems: string[] = [];
        const read = await readPromptFile(file, spec.prompt, { read: (f) => readAt(g.repo, g.sha, f), at: `${g.repo}@${g.sha.slice(0, 12)}` }, problems);
        if (!read) invalid(`invalid prompt ${spec.prompt}: ${problems.join('; ')}`, problems);
        prompt = read!;
      } else {
        prompt = source as PromptSpec;
      }
      let text = testSet?.text;
      let testSetSource = testSet?.source ?? spec.evaluation.testSet;
      if (text === undefined) {
        const g = needGit(`evaluation.testSet (${spec.evaluation.testSet})`);
        text = await readAt(g.repo, g.sha, spec.evaluation.testSet);
        if (text === undefined) invalid(`evaluation.testSet: ${spec.evaluation.testSet} does not exist at ${g.repo}@${g.sha.slice(0, 12)}: commit the JSONL test set, or fix the path`);
        testSetSource = spec.evaluation.testSet;
      }
      try {
        parsePromptTestSet(text!, testSetSource);
      } catch (err) {
        invalid((err as Error).message);
      }
      return {
        spec,
        prompt: prompt!,
        testSet: { text: text!, source: testSetSource },
        version: promptDigest(prompt!).slice(0, 12),
        ...(git ? { git } : {}),
      };
    },
  };
}
