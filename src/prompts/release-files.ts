import { PromptSpecSchema, type PromptSpec } from '../contracts/prompt';
import { parsePromptTestSet } from '../contracts/prompt-eval';
import { PROMPT_FILE, PromptReleaseSpecSchema, PROMPTS_DIR, type PromptReleaseRequestInput } from '../contracts/prompt-release';
import { ForgelineYamlError, parseYamlText } from '../webhooks/forgeline-yaml';

/**
 * Reading a prompt release from files: a `release.yaml` (YAML or JSON), the prompt file its
 * `source.file` names and the JSONL test set its `evaluation.testSet` names, through `read`
 * (repository-relative paths: the webhook's RepoReader at a commit, or the local work tree for the
 * CLI). A release file at `prompts/<name>/release.yaml` may leave out `prompt` (the folder's name)
 * and `source` (`prompts/<name>/prompt.yaml`); a prompt file may leave out `name`.
 *
 * Every problem is collected as `file: field (line N): message`, so one pass reports them all.
 */
export interface ReleaseFileReader {
  /** The file's text, or undefined when it does not exist. */
  read(file: string): Promise<string | undefined>;
  /** Where the files are read from, for messages: `acme/prompts@3f2a9c1b7d00`, or a directory. */
  at: string;
}

/** `prompts/<name>/release.yaml` → name; undefined for a release file elsewhere. */
export function folderPrompt(releaseFile: string): string | undefined {
  const m = new RegExp(`(?:^|/)${PROMPTS_DIR}/([^/]+)/[^/]+$`).exec(releaseFile);
  return m?.[1];
}

/** One file's zod issues as `file: field (line N): message`. */
export function fieldProblems(file: string, issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>, where: (p: readonly PropertyKey[]) => string = () => ''): string[] {
  return issues.map((i) => {
    const field = i.path.length ? i.path.map(String).join('.') : '(file)';
    const last = `${String(i.path.at(-1) ?? '')}: `;
    const message = i.message.startsWith(`${field}: `) ? i.message.slice(field.length + 2) : i.path.length && i.message.startsWith(last) ? i.message.slice(last.length) : i.message;
    return `${file}: ${field}${where(i.path)}: ${message}`;
  });
}

function parseFile(text: string, file: string, problems: string[]): ReturnType<typeof parseYamlText> | undefined {
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

/**
 * Read and validate a prompt file (YAML or JSON; `name` defaults to `name`). Problems are pushed
 * to `problems`, naming `from` (the field that names the file) when it does not exist.
 */
export async function readPromptFile(file: string, name: string, files: ReleaseFileReader, problems: string[], from = 'source.file'): Promise<PromptSpec | undefined> {
  const text = await files.read(file);
  if (text === undefined) {
    problems.push(`${from}: ${file} does not exist at ${files.at}: commit it, or fix the path`);
    return undefined;
  }
  const doc = parseFile(text, file, problems);
  if (!doc) return undefined;
  const value = doc.value && typeof doc.value === 'object' && !Array.isArray(doc.value) ? { name, ...(doc.value as Record<string, unknown>) } : doc.value;
  const p = PromptSpecSchema.safeParse(value);
  if (!p.success) {
    problems.push(...fieldProblems(file, p.error.issues, doc.where));
    return undefined;
  }
  if (p.data.name !== name) {
    problems.push(`${file}: name${doc.where(['name'])}: '${p.data.name}' differs from prompt '${name}': make them equal, or leave name out`);
    return undefined;
  }
  return p.data;
}

/**
 * Read and validate one prompt release from `releaseFile`; the prompt and the test set are
 * inlined in the result (the workflow's input). Problems are pushed to `problems` (and undefined
 * returned); nothing is thrown for bad content.
 */
export async function readPromptReleaseFiles(releaseFile: string, files: ReleaseFileReader, problems: string[]): Promise<PromptReleaseRequestInput | undefined> {
  const before = problems.length;
  const releaseText = await files.read(releaseFile);
  if (releaseText === undefined) {
    problems.push(`${releaseFile}: does not exist at ${files.at}`);
    return undefined;
  }
  const parsed = parseFile(releaseText, releaseFile, problems);
  if (!parsed) return undefined;
  const raw = parsed.value;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    problems.push(`${releaseFile}: expected a mapping with prompt, source, evaluation, canary and approval`);
    return undefined;
  }
  const folder = folderPrompt(releaseFile);
  const defaults: Record<string, unknown> = folder ? { prompt: folder, source: { file: `${releaseFile.slice(0, releaseFile.lastIndexOf('/'))}/${PROMPT_FILE}` } } : {};
  const withDefaults: Record<string, unknown> = { ...defaults, ...(raw as Record<string, unknown>) };
  if (folder && withDefaults.prompt !== folder) {
    problems.push(`${releaseFile}: prompt${parsed.where(['prompt'])}: '${String(withDefaults.prompt)}' differs from its folder ${PROMPTS_DIR}/${folder}/: name the folder after the prompt, or leave prompt out`);
    return undefined;
  }
  const spec = PromptReleaseSpecSchema.safeParse(withDefaults);
  if (!spec.success) {
    problems.push(...fieldProblems(releaseFile, spec.error.issues, parsed.where));
    return undefined;
  }
  const name = spec.data.prompt;
  let prompt: PromptSpec | undefined;
  const source = spec.data.source as { file?: string };
  if (typeof source.file === 'string') {
    prompt = await readPromptFile(source.file, name, files, problems, `${releaseFile}: source.file${parsed.where(['source', 'file'])}`);
  } else {
    prompt = spec.data.source as PromptSpec;
  }
  const testSetFile = spec.data.evaluation.testSet;
  const testSetText = await files.read(testSetFile);
  if (testSetText === undefined) {
    problems.push(`${releaseFile}: evaluation.testSet${parsed.where(['evaluation', 'testSet'])}: ${testSetFile} does not exist at ${files.at}: commit the JSONL test set, or fix the path`);
  } else {
    try {
      parsePromptTestSet(testSetText, testSetFile);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > before || !prompt || testSetText === undefined) return undefined;
  return {
    prompt: name,
    source: prompt,
    evaluation: spec.data.evaluation,
    canary: spec.data.canary,
    approval: spec.data.approval,
    ...(spec.data.team ? { team: spec.data.team } : {}),
    testSet: { text: testSetText, source: testSetFile },
  };
}
