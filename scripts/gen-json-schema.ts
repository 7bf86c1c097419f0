/**
 * Publish the JSON Schemas of Forgeline's workflow inputs, generated from their zod schemas, so
 * editors can complete and check spec files (`"$schema": "…/release-spec.schema.json"`), and of
 * every recipe's input, result and protocol events (docs/schemas/recipes/), which the Python
 * recipes' pydantic models are tested against (workers/recipes/tests/test_contracts.py):
 *
 *   npx tsx scripts/gen-json-schema.ts           # (re)write docs/schemas/*.schema.json
 *   npx tsx scripts/gen-json-schema.ts --check   # exit 1 if a committed schema is out of date
 *
 * The schemas describe the input side: fields with defaults are optional and show the default.
 * A unit test (test/unit/json-schema.test.ts) fails when a committed file drifts.
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { REPO_ROOT } from '../src/config/load';
import { PromptReleaseSpecSchema } from '../src/contracts/prompt-release';
import { QuotaFileSchema } from '../src/contracts/quota';
import { ReembedSpecSchema } from '../src/contracts/specs/reembed-spec';
import { ReleaseSpecSchema } from '../src/contracts/specs/release-spec';
import { RECIPE_CONTRACTS, RecipeEventSchema } from '../src/contracts/recipes';
import { EmbeddingDriftSpecSchema } from '../src/drift/embedding-drift-spec';
import { ScheduledRetrainSpecSchema } from '../src/schedules/retrain-spec';
import { runMain } from '../src/cli/run-main';

export const SCHEMA_DIR = path.join(REPO_ROOT, 'docs', 'schemas');

/** Every published schema: file name under docs/schemas/ and the zod schema it comes from. */
export const PUBLISHED_SCHEMAS: ReadonlyArray<{ file: string; schema: z.ZodType }> = [
  { file: 'release-spec.schema.json', schema: ReleaseSpecSchema },
  { file: 'reembed-spec.schema.json', schema: ReembedSpecSchema },
  { file: 'embedding-drift-spec.schema.json', schema: EmbeddingDriftSpecSchema },
  { file: 'scheduled-retrain-spec.schema.json', schema: ScheduledRetrainSpecSchema },
  { file: 'prompt-release-spec.schema.json', schema: PromptReleaseSpecSchema },
  /** The teams' GPU quota file (FORGELINE_QUOTAS, forgeline quota apply); its cross-checks are the CLI's. */
  { file: 'quota-file.schema.json', schema: QuotaFileSchema },
  ...Object.entries(RECIPE_CONTRACTS).flatMap(([recipe, { input, result }]) => [
    { file: `recipes/${recipe}.input.schema.json`, schema: input },
    { file: `recipes/${recipe}.result.schema.json`, schema: result },
  ]),
  { file: 'recipes/events.schema.json', schema: RecipeEventSchema },
];

/** The file's exact text: stable key order (zod's), two-space indent, trailing newline. */
export function renderJsonSchema(schema: z.ZodType): string {
  return `${JSON.stringify(z.toJSONSchema(schema, { io: 'input', target: 'draft-2020-12' }), null, 2)}\n`;
}

function readIfPresent(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { check: { type: 'boolean', default: false } } });
  let stale = 0;
  for (const { file, schema } of PUBLISHED_SCHEMAS) {
    const target = path.join(SCHEMA_DIR, file);
    const text = renderJsonSchema(schema);
    const relative = path.relative(process.cwd(), target);
    if (readIfPresent(target) === text) {
      console.log(`${relative} is up to date`);
    } else if (values.check) {
      console.error(`${relative} is out of date: run npx tsx scripts/gen-json-schema.ts`);
      stale++;
    } else {
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, text);
      console.log(`wrote ${relative}`);
    }
  }
  return stale ? 1 : 0;
}

if (require.main === module) runMain(main);
