// The config's JSON Schema for editors (config-examples/infer-dev.schema.json),
// made from the zod schema. Its own module: zod's JSON Schema code is about a
// third of zod, and only `supervisor config schema` needs it, not boot.
import * as z from 'zod/mini';
import { documentSchema } from './schema.ts';

/** The JSON Schema (2020-12) shipped for editors. */
export function makeJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(documentSchema, { target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: schema.$schema,
    $id: 'https://infer-dev.local/infer-dev.schema.json',
    title: 'infer-dev llama-server supervisor config',
    ...schema,
  };
}
