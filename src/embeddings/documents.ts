/**
 * Corpus documents for the embedding pipeline: listed and read from a local folder or an
 * ArtifactStore prefix, decoded as strict UTF-8, HTML stripped to text, and cut into sections at
 * headings.
 *
 * - Formats by extension (case-insensitive): `.txt` (text), `.md` / `.markdown` (Markdown, kept as
 *   written), `.html` / `.htm` (converted to text by html-to-text: script, style, nav, noscript,
 *   template, iframe and images dropped, links without their URLs, no line wrapping). Anything
 *   else is skipped and reported in `skipped`, as are hidden files (`.name`) and, in a folder,
 *   symbolic links (not followed) and hidden directories (reported once, not entered).
 * - A document's `id` is its path relative to the folder or prefix, '/'-separated; documents come
 *   in ascending id order (UTF-16 code unit order, as JavaScript sorts strings).
 * - `text`: the decoded content with a leading byte-order mark removed and CRLF / CR line ends
 *   turned into LF, so one document gives the same text (and chunk ids) on every OS. `sha256`
 *   hashes the raw bytes.
 * - `sections` cover the text in order without gaps or overlap, each from a heading to the next
 *   heading of any level: ATX Markdown headings (`#` to `######`, outside fenced code blocks) or
 *   HTML h1 to h6. `path` is the titles of the heading and its enclosing headings; text before
 *   the first heading is a section with an empty path (only when it holds more than whitespace).
 *   Offsets are UTF-16 code unit indices into `text` (JavaScript string indices), end exclusive.
 *
 * Errors (terminal ForgelineErrors of type InvalidSpec, the message naming the file and the fix):
 * no supported document at all, a file that is not valid UTF-8, a file over `maxDocumentBytes`.
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { convert, type FormatCallback } from 'html-to-text';
import { ErrorType } from '../contracts/errors';
import type { ArtifactStore } from '../ports/artifact-store';
import { ForgelineError } from '../ports/errors';

export type DocumentFormat = 'text' | 'markdown' | 'html';

export interface DocumentSection {
  /** Heading titles from the outermost to this section's own; [] for text before the first heading. */
  path: string[];
  /** Heading level 1 to 6; 0 for text before the first heading. */
  level: number;
  startChar: number;
  endChar: number;
}

export interface CorpusDocument {
  /** Path relative to the corpus root, '/'-separated, e.g. `guides/install.md`. */
  id: string;
  format: DocumentFormat;
  text: string;
  /** Hex sha256 of the file's bytes. */
  sha256: string;
  /** Size of the file in bytes. */
  bytes: number;
  sections: DocumentSection[];
}

/** A supported file found by listing, not read yet. */
export interface DocumentEntry {
  id: string;
  format: DocumentFormat;
  bytes: number;
  /** Where it is read from: an absolute path (folder) or a store key (artifacts). */
  location: string;
}

export interface SkippedFile {
  id: string;
  reason: string;
}

export interface CorpusListing {
  entries: DocumentEntry[];
  skipped: SkippedFile[];
}

/** Where the corpus is: a local folder, or every key under `prefix` of an ArtifactStore. */
export type DocumentSource = { folder: string } | { artifacts: ArtifactStore; prefix: string };

export interface DocumentOptions {
  /** Largest file accepted, in bytes (default 8 MiB); a larger one fails the listing. */
  maxDocumentBytes?: number;
}

export const DEFAULT_MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

const FORMATS: Record<string, DocumentFormat> = { '.txt': 'text', '.md': 'markdown', '.markdown': 'markdown', '.html': 'html', '.htm': 'html' };
export const SUPPORTED_EXTENSIONS = Object.keys(FORMATS);

/** The format a file name maps to, or undefined when not supported. */
export function formatOf(name: string): DocumentFormat | undefined {
  return FORMATS[path.posix.extname(name).toLowerCase()];
}

const invalid = (message: string): ForgelineError => new ForgelineError(ErrorType.InvalidSpec, message, true);

function describe(source: DocumentSource): string {
  return 'folder' in source ? `folder ${source.folder}` : `prefix ${source.prefix} of ${source.artifacts.rootUri}`;
}

function maxBytesOf(options: DocumentOptions): number {
  const max = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  if (!Number.isInteger(max) || max < 1) throw invalid(`maxDocumentBytes: expected a whole number of bytes >= 1, got ${max}`);
  return max;
}

async function walkFolder(root: string, listing: CorpusListing): Promise<void> {
  const visit = async (dir: string, rel: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (rel === '' && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) throw invalid(`corpus folder ${root} ${e.code === 'ENOENT' ? 'does not exist' : 'is not a folder'}; point the corpus source at a folder of .txt, .md or .html files`);
      throw err;
    }
    for (const e of entries) {
      const id = rel ? `${rel}/${e.name}` : e.name;
      const full = path.join(dir, e.name);
      if (e.name.startsWith('.')) listing.skipped.push({ id, reason: e.isDirectory() ? 'hidden folder (not entered)' : 'hidden file' });
      else if (e.isSymbolicLink()) listing.skipped.push({ id, reason: 'symbolic link (not followed)' });
      else if (e.isDirectory()) await visit(full, id);
      else if (!e.isFile()) listing.skipped.push({ id, reason: 'not a regular file' });
      else {
        const format = formatOf(e.name);
        if (!format) listing.skipped.push({ id, reason: `unsupported type (supported: ${SUPPORTED_EXTENSIONS.join(', ')})` });
        else listing.entries.push({ id, format, bytes: (await stat(full)).size, location: full });
      }
    }
  };
  await visit(root, '');
}

/** The prefix as a folder-like key prefix: '' (the whole store) or ending in '/'. */
function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '');
  return p === '' || p.endsWith('/') ? p : `${p}/`;
}

/**
 * Every supported document of the source, in id order, with the files it skipped and why.
 * Fails (terminal) when there is no supported document or one is over the size limit.
 */
export async function listDocuments(source: DocumentSource, options: DocumentOptions = {}): Promise<CorpusListing> {
  const maxBytes = maxBytesOf(options);
  const listing: CorpusListing = { entries: [], skipped: [] };
  if ('folder' in source) {
    await walkFolder(path.resolve(source.folder), listing);
  } else {
    const prefix = normalizePrefix(source.prefix);
    for await (const info of source.artifacts.listAll(prefix)) {
      const id = info.key.slice(prefix.length);
      const format = formatOf(id);
      if (id.split('/').some((part) => part.startsWith('.'))) listing.skipped.push({ id, reason: 'hidden file' });
      else if (!format) listing.skipped.push({ id, reason: `unsupported type (supported: ${SUPPORTED_EXTENSIONS.join(', ')})` });
      else listing.entries.push({ id, format, bytes: info.size, location: info.key });
    }
  }
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  listing.entries.sort(byId);
  listing.skipped.sort(byId);
  if (listing.entries.length === 0) {
    const seen = listing.skipped.length ? ` (skipped ${listing.skipped.length}: ${listing.skipped.slice(0, 5).map((s) => `${s.id}: ${s.reason}`).join('; ')}${listing.skipped.length > 5 ? '; ...' : ''})` : ' (it is empty)';
    throw invalid(`corpus ${describe(source)}: no supported documents${seen}; add ${SUPPORTED_EXTENSIONS.join(', ')} files or point the corpus source at the folder or prefix that holds them`);
  }
  const tooBig = listing.entries.find((e) => e.bytes > maxBytes);
  if (tooBig) throw invalid(`corpus ${describe(source)}: ${tooBig.id} is ${tooBig.bytes} bytes, over the limit of ${maxBytes} (maxDocumentBytes); split the document or raise the limit`);
  return listing;
}

/** Reads one listed document and parses it. */
export async function readDocument(source: DocumentSource, entry: DocumentEntry, options: DocumentOptions = {}): Promise<CorpusDocument> {
  const bytes = 'folder' in source ? await readFile(entry.location) : await source.artifacts.getBytes(entry.location);
  const maxBytes = maxBytesOf(options);
  if (bytes.length > maxBytes) throw invalid(`corpus ${describe(source)}: ${entry.id} is ${bytes.length} bytes, over the limit of ${maxBytes} (maxDocumentBytes); split the document or raise the limit`);
  return parseDocument(entry.id, bytes, entry.format);
}

/** The listed documents, read one at a time in id order (for corpora too large to hold at once). */
export async function* readDocuments(source: DocumentSource, entries: readonly DocumentEntry[], options: DocumentOptions = {}): AsyncGenerator<CorpusDocument> {
  for (const entry of entries) yield await readDocument(source, entry, options);
}

/** Every document of the source, read and parsed, with the files skipped. */
export async function loadDocuments(source: DocumentSource, options: DocumentOptions = {}): Promise<{ documents: CorpusDocument[]; skipped: SkippedFile[] }> {
  const { entries, skipped } = await listDocuments(source, options);
  const documents: CorpusDocument[] = [];
  for await (const doc of readDocuments(source, entries, options)) documents.push(doc);
  return { documents, skipped };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses a document's bytes (pure): strict UTF-8, HTML to text, sections. */
export function parseDocument(id: string, bytes: Uint8Array, format: DocumentFormat | undefined = formatOf(id)): CorpusDocument {
  if (!format) throw invalid(`document ${id}: unsupported type; supported: ${SUPPORTED_EXTENSIONS.join(', ')}`);
  let raw: string;
  try {
    raw = utf8.decode(bytes);
  } catch {
    throw invalid(`document ${id} is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes)}); re-save it as UTF-8 (e.g. \`iconv -f latin1 -t utf-8\`) or remove it from the corpus`);
  }
  const source = raw.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const parsed = format === 'html' ? htmlToText(source) : { text: source, headings: format === 'markdown' ? markdownHeadings(source) : [] };
  return { id, format, text: parsed.text, sha256, bytes: bytes.length, sections: sectionsOf(parsed.text, parsed.headings) };
}

/** Offset of the first byte of the first invalid sequence (for the error message). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  // A streaming decode of a prefix fails only on a bad sequence inside it (an incomplete last
  // character is held back), so failure is monotone in the prefix length: bisect for it.
  const fails = (n: number) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return false;
    } catch {
      return true;
    }
  };
  let lo = 0;
  let hi = bytes.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (fails(mid)) hi = mid;
    else lo = mid;
  }
  // Decoding fails at byte hi - 1; the bad sequence starts at the last complete character before it.
  for (let start = hi - 1; start >= Math.max(0, hi - 4); start--) {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, start));
      return start;
    } catch {
      /* inside the bad sequence */
    }
  }
  return Math.max(0, hi - 1);
}

interface Heading {
  /** Where the heading's line starts in the text. */
  at: number;
  level: number;
  title: string;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;

/** ATX headings of a Markdown text, outside fenced code blocks. */
export function markdownHeadings(text: string): Heading[] {
  const out: Heading[] = [];
  let fence: string | undefined;
  let at = 0;
  for (const line of text.split('\n')) {
    const f = FENCE.exec(line);
    if (fence) {
      if (f && f[1]![0] === fence[0] && f[1]!.length >= fence.length && line.trim() === f[1]) fence = undefined;
    } else if (f) {
      fence = f[1];
    } else {
      const h = ATX.exec(line);
      if (h) out.push({ at, level: h[1]!.length, title: (h[2] ?? '').replace(/[ \t]+#+$/, '').trim() });
    }
    at += line.length + 1;
  }
  return out;
}

const MARK_OPEN = '\uE000';
const MARK_CLOSE = '\uE001';

/** Marks where each heading starts so its offset survives the conversion. */
const headingFormatter: FormatCallback = (elem, walk, builder, formatOptions) => {
  builder.openBlock({ leadingLineBreaks: 2 });
  builder.addLiteral(`${MARK_OPEN}${String((formatOptions as { level?: number }).level ?? 1)}${MARK_CLOSE}`);
  walk(elem.children, builder);
  builder.closeBlock({ trailingLineBreaks: 2 });
};

const SKIPPED_ELEMENTS = ['script', 'style', 'nav', 'noscript', 'template', 'iframe', 'img', 'svg', 'head'];

function htmlToText(html: string): { text: string; headings: Heading[] } {
  // The private-use marker characters cannot come from the page: drop them first.
  const converted = convert(html.replace(/[\uE000\uE001]/g, ''), {
    wordwrap: false,
    formatters: { forgelineHeading: headingFormatter },
    selectors: [
      { selector: 'a', options: { ignoreHref: true } },
      ...SKIPPED_ELEMENTS.map((selector) => ({ selector, format: 'skip' })),
      ...[1, 2, 3, 4, 5, 6].map((level) => ({ selector: `h${level}`, format: 'forgelineHeading', options: { level } })),
    ],
  });
  const headings: Heading[] = [];
  let text = '';
  let from = 0;
  const marks = new RegExp(`${MARK_OPEN}(\\d)${MARK_CLOSE}`, 'g');
  for (let m = marks.exec(converted); m; m = marks.exec(converted)) {
    text += converted.slice(from, m.index);
    from = m.index + m[0].length;
    const lineEnd = converted.indexOf('\n', from);
    headings.push({ at: text.length, level: Number(m[1]), title: converted.slice(from, lineEnd < 0 ? undefined : lineEnd).replace(/\uE000\d\uE001/g, '').trim() });
  }
  text += converted.slice(from);
  return { text, headings };
}

/** Sections from headings: contiguous, each from a heading to the next one. */
function sectionsOf(text: string, headings: readonly Heading[]): DocumentSection[] {
  const out: DocumentSection[] = [];
  const first = headings[0]?.at ?? text.length;
  if (text.slice(0, first).trim()) out.push({ path: [], level: 0, startChar: 0, endChar: first });
  const stack: Array<{ level: number; title: string }> = [];
  headings.forEach((h, i) => {
    while (stack.length && stack[stack.length - 1]!.level >= h.level) stack.pop();
    stack.push({ level: h.level, title: h.title });
    out.push({ path: stack.map((s) => s.title), level: h.level, startChar: h.at, endChar: headings[i + 1]?.at ?? text.length });
  });
  if (out.length && out[0]!.startChar > 0) out[0] = { ...out[0]!, startChar: 0 };
  return out;
}
