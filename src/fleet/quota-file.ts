/**
 * The quota file (`forgeline quota apply <file>`, FORGELINE_QUOTAS): teams' GPU quotas per pool in
 * YAML (or JSON), validated with the schema of src/contracts/quota.ts; every problem names the
 * field path, its line in the file and the fix. examples/quotas.yaml documents each field.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument } from 'yaml';
import { QuotaFileSchema, type QuotaFile } from '../contracts/quota';
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';
import { lineOf } from '../schedules/file';

/** A quota file that cannot be used; `problems` lists each as `field (line N): message`. */
export class QuotaFileError extends ForgelineError {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(ErrorType.InvalidSpec, `invalid quota file ${file}: ${problems.length === 1 ? problems[0] : `${problems.length} problems\n${problems.map((p) => `  - ${p}`).join('\n')}`}`, true);
  }
}

/** Parse and validate a quota file's text. */
export function parseQuotaFile(text: string, file: string): QuotaFile {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new QuotaFileError(file, doc.errors.map((e) => `line ${e.linePos?.[0].line ?? '?'}, column ${e.linePos?.[0].col ?? '?'}: invalid YAML (${e.message.split('\n')[0]})`));
  }
  const parsed = QuotaFileSchema.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {});
  if (parsed.success) return parsed.data;
  throw new QuotaFileError(
    file,
    parsed.error.issues.map((i) => {
      const path = i.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      const field = path.length ? path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '') : '(file)';
      const line = lineOf(doc, lines, path);
      return `${field}${line !== undefined ? ` (line ${line})` : ''}: ${i.message}`;
    }),
  );
}

/** Read and validate the quota file at `file`; a missing file is a QuotaFileError naming it. */
export async function loadQuotaFile(file: string): Promise<QuotaFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new QuotaFileError(file, [`cannot read the quota file (${(err as NodeJS.ErrnoException).code ?? String(err)}): check the path (FORGELINE_QUOTAS or the argument)`]);
  }
  return parseQuotaFile(text, file);
}
