import { readFileSync } from 'node:fs';
import { parse, printParseErrorCode, type ParseError } from 'jsonc-parser';
import { UsageError } from './errors';

/** 1-based line and column of a character offset. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

/** `CommaExpected` → `comma expected`. */
function words(code: string): string {
  return code.replace(/([a-z])([A-Z])/g, '$1 $2').toLowerCase();
}

/**
 * The JSON value in a spec file given as `--spec FILE`. A missing file or malformed JSON is a
 * UsageError of one line naming the file and, for JSON, the line and column of the first problem.
 */
export function readSpecFile(file: string, option = '--spec'): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a JSON file' : (err as Error).message;
    throw new UsageError(`${option} ${file}: ${why}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // JSON.parse on Node 20 rarely says where; a tolerant parser finds the first problem's offset.
    const errors: ParseError[] = [];
    parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const first = errors[0];
    if (!first) throw new UsageError(`${option} ${file}: invalid JSON`);
    const { line, column } = lineColumn(text, first.offset);
    throw new UsageError(`${option} ${file}: invalid JSON at line ${line} column ${column} (${words(printParseErrorCode(first.error))})`);
  }
}
