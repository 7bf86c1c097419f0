/**
 * The quota file (`forgeline quota apply <file>`, FORGELINE_QUOTAS): teams' GPU quotas per pool in
 * YAML (or JSON), validated with the schema of src/contracts/quota.ts; every problem names the
 * field path, its line in the file and the fix. examples/quotas.yaml documents each field.
 */
import { readFile } from 'node:fs/promises';
import { QuotaFileSchema, type QuotaFile } from '../contracts/quota';
import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';
import { parseYamlWith } from '../schedules/file';

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
  const r = parseYamlWith(QuotaFileSchema, text);
  if (r.ok) return r.value;
  throw new QuotaFileError(file, r.problems);
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
