// The client schema must equal the ZRocket contract (schema.contract.json, written from the
// contract by hand): zero-cache rejects a client whose tables or column types differ from the
// replica, and the browser end-to-end test checks the Rust export against the same file.
import { describe, expect, it } from 'vitest';
import contractJson from '../schema.contract.json';
import { schema } from './schema';

const contract = contractJson as unknown as {
  tables: Record<string, unknown>;
  relationships: Record<string, unknown>;
};

describe('schema', () => {
  const actual = JSON.parse(JSON.stringify(schema)) as typeof contract;

  it('has exactly the contract tables, columns and primary keys', () => {
    expect(Object.keys(actual.tables).sort()).toEqual(Object.keys(contract.tables).sort());
    for (const name of Object.keys(contract.tables)) {
      expect(actual.tables[name], `table ${name}`).toEqual(contract.tables[name]);
    }
  });

  it('has exactly the contract relationships', () => {
    expect(actual.relationships).toEqual(contract.relationships);
  });

  it('leaves legacy queries and mutators off', () => {
    expect(actual).not.toHaveProperty('enableLegacyQueries');
    expect(actual).not.toHaveProperty('enableLegacyMutators');
  });
});
