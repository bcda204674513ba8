import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import { makeJsonSchema } from '../../src/config/json-schema.ts';

const dir = new URL('../../config-examples/', import.meta.url);
const tomls = readdirSync(dir).filter((f) => f.endsWith('.toml'));

describe('config-examples', () => {
  it.each(tomls)('%s plans without errors or warnings and points editors at the schema', (file) => {
    const text = readFileSync(new URL(file, dir), 'utf8');
    expect(text.startsWith('#:schema ./infer-dev.schema.json\n')).toBe(true);
    const result = makeLaunchPlan(text, { env: {}, file, isFile: () => false, which: () => null });
    expect(result.issues).toEqual([]);
    expect(result.plan).not.toBeNull();
  });

  it('the shipped JSON Schema is the one the zod schema generates (run `npm run schema` after changing it)', () => {
    const shipped = JSON.parse(readFileSync(new URL('infer-dev.schema.json', dir), 'utf8'));
    expect(shipped).toEqual(makeJsonSchema());
  });

  it('the schema knows the keys editors should complete', () => {
    const schema = makeJsonSchema() as any;
    const control = schema.properties.instance.properties.control.properties;
    for (const key of ['restart', 'max_restarts', 'backoff_initial_ms', 'startup_stall_s', 'gpu_ids', 'env', 'user', 'log_keep']) {
      expect(control).toHaveProperty(key);
    }
    expect(schema.properties.master.additionalProperties).toBe(false);
  });
});
