import { defineQuery } from '@temporalio/workflow';
import type { ReembedProgress } from '../../src/contracts/reembed-spec';

/** The re-embed now: stage, slices and batches done of their totals, counts, validation, swap and retirement. Never rename: it lives in histories. */
export const progressQuery = defineQuery<ReembedProgress>('progress');
