import { ApplicationFailure } from '@temporalio/activity';
import type { z } from 'zod';
import { ErrorType } from '../../src/contracts/errors';
import { parsePromptSpec, PromptSpecSchema, type PromptSpec } from '../../src/contracts/prompt';
import { parsePromptTestSet } from '../../src/contracts/prompt-eval';
import {
  changedPrompts,
  promptFolder,
  PROMPT_FILE,
  PromptReleaseRequestSchema,
  PromptReleaseSpecSchema,
  RELEASE_FILE,
  type PromptReleasePush,
  type PromptReleaseRequestInput,
  type ValidatedPromptRelease,
} from '../../src/contracts/prompt-release';
import { formatProblems, validateSpec } from '../../src/contracts/validate';
import type { RepoReader } from '../../src/ports/repo-reader';
import { promptDigest } from '../../src/registry/prompt-registry';
import { ForgelineYamlError, parseYamlText } from '../../src/webhooks/forgeline-yaml';
import type { ActivityDeps } from '../deps';

const invalid = (message: string, problems: string[] = [message]): never => {
  throw ApplicationFailure.nonRetryable(message, ErrorType.InvalidSpec, { problems });
};

/** One file's problems as `file: field (line N): message`. */
function fieldProblems(file: string, issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>, where: (p: readonly PropertyKey[]) => string = () => ''): string[] {
  return issues.map((i) => {
    const field = i.path.length ? i.path.map(String).join('.') : '(file)';
    const last = `${String(i.path.at(-1) ?? '')}: `;
    const message = i.message.startsWith(`${field}: `) ? i.message.slice(field.length + 2) : i.path.length && i.message.startsWith(last) ? i.message.slice(last.length) : i.message;
    return `${file}: ${field}${where(i.path)}: ${message}`;
  });
}

/** YAML (or JSON) text, parsed; a syntax error is a problem naming the file, line and column. */
function parseFile(text: string, file: string, problems: string[]): { value: unknown; where: (p: readonly PropertyKey[]) => string } | undefined {
  try {
    return parseYamlText(text, file);
  } catch (err) {
    if (err instanceof ForgelineYamlError) {
      problems.push(...err.problems.map((p) => `${file}: ${p}`));
      return undefined;
    }
    throw err;
  }
}

export function createPromptResolveActivities(deps: Pick<ActivityDeps, 'repos'>) {
  const reader = (): RepoReader => deps.repos ?? invalid('this control worker has no repository reader: set FORGELINE_WEBHOOK_REPOS (owner/name=/path/to/checkout or owner/name=github) on the control worker, as on the webhook receiver');
  const read = async (repo: string, sha: string, file: string): Promise<string | undefined> => {
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
      const problems: string[] = [];
      const releases: PromptReleaseRequestInput[] = [];
      const skipped: string[] = [];
      for (const name of names) {
        const dir = promptFolder(name);
        const releaseFile = `${dir}/${RELEASE_FILE}`;
        const releaseText = await read(push.repo, push.sha, releaseFile);
        if (releaseText === undefined) {
          if ((await read(push.repo, push.sha, `${dir}/${PROMPT_FILE}`)) === undefined) {
            skipped.push(`${name}: ${dir}/ has neither ${RELEASE_FILE} nor ${PROMPT_FILE} at ${at} (removed): nothing to release`);
          } else {
            problems.push(`${releaseFile}: does not exist at ${at}: add it next to ${PROMPT_FILE} (evaluation, canary, approval; see README "Prompt releases")`);
          }
          continue;
        }
        const parsed = parseFile(releaseText, releaseFile, problems);
        if (!parsed) continue;
        const raw = parsed.value;
        if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
          problems.push(`${releaseFile}: expected a mapping with evaluation, canary and approval`);
          continue;
        }
        const withDefaults: Record<string, unknown> = { prompt: name, source: { file: `${dir}/${PROMPT_FILE}` }, ...(raw as Record<string, unknown>) };
        if (withDefaults.prompt !== name) {
          problems.push(`${releaseFile}: prompt${parsed.where(['prompt'])}: '${String(withDefaults.prompt)}' differs from its folder ${dir}/: name the folder after the prompt, or leave prompt out`);
          continue;
        }
        const spec = PromptReleaseSpecSchema.safeParse(withDefaults);
        if (!spec.success) {
          problems.push(...fieldProblems(releaseFile, spec.error.issues, parsed.where));
          continue;
        }
        // The prompt itself: a file at the commit (default prompts/<name>/prompt.yaml), or inline.
        let prompt: PromptSpec | undefined;
        const source = spec.data.source as { file?: string };
        if (typeof source.file === 'string') {
          const text = await read(push.repo, push.sha, source.file);
          if (text === undefined) {
            problems.push(`${releaseFile}: source.file${parsed.where(['source', 'file'])}: ${source.file} does not exist at ${at}: commit it, or fix the path`);
            continue;
          }
          const promptDoc = parseFile(text, source.file, problems);
          if (!promptDoc) continue;
          const value = promptDoc.value && typeof promptDoc.value === 'object' && !Array.isArray(promptDoc.value) ? { name, ...(promptDoc.value as Record<string, unknown>) } : promptDoc.value;
          const p = PromptSpecSchema.safeParse(value);
          if (!p.success) {
            problems.push(...fieldProblems(source.file, p.error.issues, promptDoc.where));
            continue;
          }
          if (p.data.name !== name) {
            problems.push(`${source.file}: name${promptDoc.where(['name'])}: '${p.data.name}' differs from its folder ${dir}/: name the folder after the prompt, or leave name out`);
            continue;
          }
          prompt = p.data;
        } else {
          prompt = spec.data.source as PromptSpec;
        }
        const testSetFile = spec.data.evaluation.testSet;
        const testSetText = await read(push.repo, push.sha, testSetFile);
        if (testSetText === undefined) {
          problems.push(`${releaseFile}: evaluation.testSet${parsed.where(['evaluation', 'testSet'])}: ${testSetFile} does not exist at ${at}: commit the JSONL test set, or fix the path`);
          continue;
        }
        try {
          parsePromptTestSet(testSetText, testSetFile);
        } catch (err) {
          problems.push((err as Error).message);
          continue;
        }
        releases.push({
          prompt: name,
          source: prompt,
          evaluation: spec.data.evaluation,
          canary: spec.data.canary,
          approval: spec.data.approval,
          ...(spec.data.team ? { team: spec.data.team } : {}),
          testSet: { text: testSetText, source: testSetFile },
          git: { repo: push.repo, ref: push.ref, sha: push.sha },
        } as PromptReleaseRequestInput);
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
        const text = await read(g.repo, g.sha, file);
        if (text === undefined) invalid(`source.file: ${file} does not exist at ${g.repo}@${g.sha.slice(0, 12)}: commit it, or fix the path`);
        const problems: string[] = [];
        const doc = parseFile(text!, file, problems);
        if (!doc) invalid(problems.join('; '), problems);
        const value = doc!.value && typeof doc!.value === 'object' ? { name: spec.prompt, ...(doc!.value as Record<string, unknown>) } : doc!.value;
        try {
          prompt = parsePromptSpec(value);
        } catch (err) {
          invalid(`${file}: ${(err as Error).message}`);
        }
        if (prompt!.name !== spec.prompt) invalid(`${file}: name: '${prompt!.name}' differs from prompt '${spec.prompt}': make them equal`);
      } else {
        prompt = source as PromptSpec;
      }
      let text = testSet?.text;
      let testSetSource = testSet?.source ?? spec.evaluation.testSet;
      if (text === undefined) {
        const g = needGit(`evaluation.testSet (${spec.evaluation.testSet})`);
        text = await read(g.repo, g.sha, spec.evaluation.testSet);
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
