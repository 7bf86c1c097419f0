import { readFileSync, writeFileSync } from 'node:fs';
import { DriftInputError, type Embeddings } from './embeddings';

/**
 * A strict reader for NumPy's .npy format (versions 1.0, 2.0, 3.0) that accepts exactly what the
 * drift check needs: a 2-D little-endian float32 array ('<f4') in C order. Anything else is a
 * DriftInputError naming the file, the problem and the fix.
 */
const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

export function parseNpy(buf: Buffer, file: string): Embeddings {
  const bad = (problem: string) => new DriftInputError(`${file}: ${problem}`);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad('not a .npy file (no \\x93NUMPY magic); save the array with numpy.save');
  const major = buf[6]!;
  if (major < 1 || major > 3) throw bad(`.npy format version ${major}.${buf[7]} is not supported (1.0, 2.0 or 3.0)`);
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start + headerLen) throw bad(`truncated header (${buf.length} bytes, the header says ${start + headerLen})`);
  const header = buf.subarray(start, start + headerLen).toString(major === 3 ? 'utf8' : 'latin1').trim();
  const field = (key: string) => new RegExp(`['"]${key}['"]\\s*:\\s*([^,}]+(?:\\([^)]*\\))?)`).exec(header)?.[1]?.trim();
  if (!header.startsWith('{') || !header.endsWith('}')) throw bad(`malformed header ${JSON.stringify(header)}`);
  const descr = field('descr');
  const fortran = field('fortran_order');
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad(`header lacks descr, fortran_order or shape: ${header}`);
  const dtype = descr.replace(/^['"]|['"]$/g, '');
  if (dtype !== '<f4') throw bad(`dtype ${dtype} is not supported: expected little-endian float32 ('<f4'); convert with arr.astype('<f4')`);
  if (fortran !== 'False') throw bad('the array is in Fortran order: expected C order; save numpy.ascontiguousarray(arr)');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(Number);
  if (shape.length !== 2 || shape.some((s) => !Number.isInteger(s) || s < 0)) throw bad(`shape (${shapeText}) is not 2-D: expected (rows, dimensions), one embedding per row`);
  const [rows, cols] = shape as [number, number];
  const offset = start + headerLen;
  const want = rows * cols * 4;
  if (buf.length - offset !== want) throw bad(`data is ${buf.length - offset} bytes, shape (${rows}, ${cols}) of float32 needs ${want}: the file is truncated or not what its header says`);
  const data = new Float32Array(rows * cols);
  new Uint8Array(data.buffer).set(buf.subarray(offset, offset + want)); // copy: the payload need not be 4-byte aligned
  return { rows, cols, data };
}

export function readNpy(file: string): Embeddings {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    throw new DriftInputError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseNpy(buf, file);
}

/** A .npy (version 1.0) of a 2-D float32 array, header padded to 64 bytes as numpy writes it. */
export function formatNpy(e: Embeddings): Buffer {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${e.rows}, ${e.cols}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header = header + ' '.repeat(pad % 64) + '\n';
  const pre = Buffer.alloc(10);
  MAGIC.copy(pre, 0);
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength)]);
}

export function writeNpy(file: string, e: Embeddings): void {
  writeFileSync(file, formatNpy(e));
}
