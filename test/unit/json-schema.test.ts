import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { PUBLISHED_SCHEMAS, renderJsonSchema, SCHEMA_DIR } from '../../scripts/gen-json-schema';

describe('published JSON Schemas (docs/schemas)', function () {
  for (const { file, schema } of PUBLISHED_SCHEMAS) {
    it(`${file} matches its zod schema (regenerate: npx tsx scripts/gen-json-schema.ts)`, function () {
      assert.equal(readFileSync(path.join(SCHEMA_DIR, file), 'utf8'), renderJsonSchema(schema));
    });
  }

  it('holds no schema that nothing publishes any more (a renamed or removed recipe)', function () {
    const published = new Set(PUBLISHED_SCHEMAS.map((s) => s.file));
    const files = readdirSync(SCHEMA_DIR, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.schema.json'));
    assert.deepEqual(files.filter((f) => !published.has(f.split(path.sep).join('/'))), []);
  });
});
