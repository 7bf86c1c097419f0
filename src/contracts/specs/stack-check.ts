import { z } from 'zod';
import type { StackCheckSpec } from '../stack-check';

export const StackCheckSpecSchema = z.strictObject({
  pool: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'expected a pool name like cpu or h200 (lowercase letters, digits, dashes)'),
  payloadBytes: z.number().int('expected a whole number of bytes').min(1, 'expected at least 1 byte').max(1 << 30, 'expected at most 1 GiB').optional(),
  note: z.string().max(500, 'expected at most 500 characters').optional(),
  timeout: z.string().regex(/^[1-9]\d{0,5}(ms|s|m|h)$/, 'expected a duration such as 30s, 10m or 1h').optional(),
}) satisfies z.ZodType<StackCheckSpec>;
