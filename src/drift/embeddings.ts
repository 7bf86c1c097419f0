import { ErrorType } from '../contracts/errors';
import { ForgelineError } from '../ports/errors';

/** A 2-D float32 matrix in C order: `rows` embeddings of `cols` components. */
export interface Embeddings {
  rows: number;
  cols: number;
  data: Float32Array;
}

/** Bad drift input (shapes, values, options): terminal, the message names what and the fix. */
export class DriftInputError extends ForgelineError {
  constructor(message: string) {
    super(ErrorType.InvalidSpec, message, true);
  }
}

export function embeddings(rows: number, cols: number, data: Float32Array): Embeddings {
  if (data.length !== rows * cols) throw new DriftInputError(`embeddings: ${data.length} values do not make ${rows} × ${cols}`);
  return { rows, cols, data };
}

/** From nested arrays (tests, small inputs). */
export function fromRows(rows: readonly (readonly number[])[]): Embeddings {
  const cols = rows[0]?.length ?? 0;
  const data = new Float32Array(rows.length * cols);
  rows.forEach((r, i) => {
    if (r.length !== cols) throw new DriftInputError(`embeddings: row ${i} has ${r.length} components, row 0 has ${cols}`);
    data.set(r, i * cols);
  });
  return { rows: rows.length, cols, data };
}

/** Check that reference and current can be compared: 2+ rows each, same width, finite values. */
export function validatePair(reference: Embeddings, current: Embeddings, names = { reference: 'reference', current: 'current' }): void {
  for (const [name, e] of [[names.reference, reference], [names.current, current]] as const) {
    if (e.rows < 2) throw new DriftInputError(`${name}: ${e.rows} row(s); a drift check needs at least 2 embeddings on each side`);
    if (e.cols < 1) throw new DriftInputError(`${name}: no components (0 columns)`);
    if (e.data.length !== e.rows * e.cols) throw new DriftInputError(`${name}: ${e.data.length} values do not make ${e.rows} × ${e.cols}`);
    for (let i = 0; i < e.data.length; i++) {
      if (!Number.isFinite(e.data[i]!)) {
        throw new DriftInputError(`${name}: non-finite value ${e.data[i]} at row ${Math.floor(i / e.cols)}, column ${i % e.cols}; drop or fix such rows first`);
      }
    }
  }
  if (reference.cols !== current.cols) {
    throw new DriftInputError(`${names.reference} has ${reference.cols} components per row, ${names.current} has ${current.cols}: embeddings from the same model are needed`);
  }
}

/** The rows `idx` (all rows when omitted) as float64, C order. */
export function toFloat64(e: Embeddings, idx?: ArrayLike<number>): Float64Array {
  const n = idx ? idx.length : e.rows;
  const out = new Float64Array(n * e.cols);
  for (let r = 0; r < n; r++) {
    const src = (idx ? idx[r]! : r) * e.cols;
    for (let k = 0; k < e.cols; k++) out[r * e.cols + k] = e.data[src + k]!;
  }
  return out;
}

/** Mean of each column, in float64. */
export function columnMeans(data: ArrayLike<number>, rows: number, cols: number, idx?: ArrayLike<number>): Float64Array {
  const sum = new Float64Array(cols);
  const n = idx ? idx.length : rows;
  for (let r = 0; r < n; r++) {
    const o = (idx ? idx[r]! : r) * cols;
    for (let k = 0; k < cols; k++) sum[k]! += data[o + k]!;
  }
  for (let k = 0; k < cols; k++) sum[k]! /= n;
  return sum;
}
