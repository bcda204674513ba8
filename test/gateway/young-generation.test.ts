// The flag holdYoungGeneration() sets, tried in a fresh node under an allocation
// pattern like the gateway's (short-lived garbage, a ring of objects that
// survive a few scavenges): the young generation stays small with it and grows
// without it (so the check can fail).
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { HOLD_YOUNG_GENERATION_FLAG } from '../../src/gateway/young-generation.ts';

const CHURN = `
import v8 from 'node:v8';
if (process.env.FLAG) v8.setFlagsFromString(process.env.FLAG);
const ring = new Array(20000);
for (let i = 0; i < 3e6; i++) ring[i % ring.length] = { i, text: 'chunk ' + i, parts: [i, i + 1] };
const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
console.log(space.space_size);
`;

function youngGenerationMiB(flag: string): number {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', CHURN], { env: { ...process.env, FLAG: flag }, encoding: 'utf8' });
  return Number(out.trim()) / 1024 / 1024;
}

describe('holdYoungGeneration', () => {
  it('keeps the young generation at its starting size under churn', () => {
    expect(youngGenerationMiB(HOLD_YOUNG_GENERATION_FLAG)).toBeLessThanOrEqual(4);
  });

  it('without it, the same churn grows the young generation', () => {
    expect(youngGenerationMiB('')).toBeGreaterThanOrEqual(8);
  });
});
