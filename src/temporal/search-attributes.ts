import { temporal } from '@temporalio/proto';
import { status } from '@grpc/grpc-js';
import type { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { FORGELINE_SEARCH_ATTRIBUTES } from '../contracts/search-attributes';

const IndexedValueType = temporal.api.enums.v1.IndexedValueType;

const TO_INDEXED: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  [SearchAttributeType.KEYWORD]: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  [SearchAttributeType.TEXT]: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  [SearchAttributeType.INT]: IndexedValueType.INDEXED_VALUE_TYPE_INT,
  [SearchAttributeType.DOUBLE]: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  [SearchAttributeType.BOOL]: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  [SearchAttributeType.DATETIME]: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  [SearchAttributeType.KEYWORD_LIST]: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

/**
 * Register Forgeline's custom search attributes on `namespace`, creating only the missing ones.
 * Returns the names it created. Safe to call on every start.
 */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const have = new Set<string>();
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    for (const name of Object.keys(existing.customAttributes ?? {})) have.add(name);
  } catch (err) {
    // The time-skipping test server implements AddSearchAttributes but not the listing.
    if ((err as { code?: number }).code !== status.UNIMPLEMENTED) throw err;
  }
  const missing = FORGELINE_SEARCH_ATTRIBUTES.filter((k) => !have.has(k.name));
  if (missing.length === 0) return [];
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const k of missing) searchAttributes[k.name] = TO_INDEXED[k.type]!;
  await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  return missing.map((k) => k.name);
}
