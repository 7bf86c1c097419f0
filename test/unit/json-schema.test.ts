import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PUBLISHED_SCHEMAS, renderJsonSchema, SCHEMA_DIR } from '../../scripts/gen-json-schema';

describe('published JSON Schemas (docs/schemas)', function () {
  for (const { file, schema } of PUBLISHED_SCHEMAS) {
    it(`${file} matches its zod schema (regenerate: npx tsx scripts/gen-json-schema.ts)`, function () {
      assert.equal(readFileSync(path.join(SCHEMA_DIR, file), 'utf8'), renderJsonSchema(schema));
    });
  }
});
