// Bad input never crashes the config path: mutated TOML documents and override
// strings always give a plan or specific errors, never an exception; the CLI
// answers 0 or 2 without a stack trace.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeLaunchPlan } from '../../src/config/launch-plan.ts';
import { CLI } from '../support/daemon.ts';
import { mulberry32 } from '../../tools/tiny-model/tiny-model.ts';

const examples = new URL('../../config-examples/', import.meta.url);
const upstream = new URL('../fixtures/upstream/', import.meta.url);
const seeds = [
  ...readdirSync(examples).filter((f) => f.endsWith('.toml')).map((f) => readFileSync(new URL(f, examples), 'utf8')),
  ...readdirSync(upstream).map((f) => readFileSync(new URL(f, upstream), 'utf8')),
];

// Deterministic PRNG, so a failure is reproducible from its index.
const rng = mulberry32;

const PIECES = ['[', ']', '[[', '=', '"', "'", '"""', '{', '}', ',', '.', '\n', '#', 'true', 'false', '-1', '1.5e300', 'nan', 'inf',
  '1979-05-27', '[instance.x]', '[instance.x.server]', '[master]', 'port = 8080', 'gpu_ids = "9,"', 'extra_args = [1]',
  'lora = [true]', 'instance = 3', 'enable = "no"', '\u0000', '\u2581', 'é', '0x10', '1_000', '"\\u00e9"'];

function mutate(text: string, random: () => number): string {
  const pick = <T,>(items: readonly T[]) => items[Math.floor(random() * items.length)];
  const at = () => Math.floor(random() * (text.length + 1));
  const rounds = 1 + Math.floor(random() * 4);
  for (let r = 0; r < rounds; r++) {
    const op = Math.floor(random() * 6);
    const i = at();
    if (op === 0) text = text.slice(0, i) + text.slice(i + 1 + Math.floor(random() * 8));
    else if (op === 1) text = text.slice(0, i) + pick(PIECES) + text.slice(i);
    else if (op === 2) text = text.slice(0, i);
    else if (op === 3) {
      const lines = text.split('\n');
      const j = Math.floor(random() * lines.length);
      lines.splice(Math.floor(random() * lines.length), 0, lines[j]);
      text = lines.join('\n');
    } else if (op === 4) {
      const lines = text.split('\n');
      const j = Math.floor(random() * lines.length);
      lines[j] = lines[j].replace(/=.*/, `= ${pick(['1', '1.0', '"x"', 'true', '[]', '{}', '[1, "a"]', '{ a = 1 }', '-5'])}`);
      text = lines.join('\n');
    } else text = text.replace(/\n\[/, `\n${pick(PIECES)}\n[`);
  }
  return text;
}

const OVERRIDE_SEEDS = ['{"master": {"enable": false}}', '{"instance": {"x": {"server": {"port": 9000, "temp": 1.0}}}}',
  '{"instance": {"control": {"gpu_ids": "none"}}}', '[1]', '"x"', '{"a": null}', '{"instance": {"y": 1}}'];

function mutateJson(text: string, random: () => number): string {
  const chars = ['{', '}', '[', ']', '"', ':', ',', '1e5', '-', '.', '\\', 'null', 'true', ' '];
  const i = Math.floor(random() * (text.length + 1));
  const op = Math.floor(random() * 3);
  if (op === 0) return text.slice(0, i) + text.slice(i + 1);
  if (op === 1) return text.slice(0, i) + chars[Math.floor(random() * chars.length)] + text.slice(i);
  return text.slice(0, i);
}

const context = (env: Record<string, string> = {}) => ({ env, file: 'fuzz.toml', isFile: () => false, which: () => null });

describe('config fuzzing', () => {
  it('1200 mutated TOML documents: a plan or specific errors, never an exception', () => {
    const random = rng(20261127);
    let rejected = 0;
    for (let n = 0; n < 1200; n++) {
      const text = mutate(seeds[n % seeds.length], random);
      let result;
      try {
        result = makeLaunchPlan(text, context());
      } catch (err) {
        throw new Error(`document #${n} threw ${(err as Error).stack}\n--- document ---\n${text}`);
      }
      if (result.plan === null) {
        rejected++;
        const errors = result.issues.filter((i) => i.severity === 'error');
        expect(errors.length, `document #${n}`).toBeGreaterThan(0);
        for (const e of errors) expect(e.message.length, `document #${n}`).toBeGreaterThan(5);
      }
    }
    // A negative control: the mutations must actually break documents.
    expect(rejected).toBeGreaterThan(300);
  });

  it('1000 mutated override strings: a plan or an error naming the variable, never an exception', () => {
    const random = rng(7);
    const base = seeds[0];
    let rejected = 0;
    for (let n = 0; n < 1000; n++) {
      const raw = mutateJson(OVERRIDE_SEEDS[n % OVERRIDE_SEEDS.length], random);
      const result = makeLaunchPlan(base, context({ AUTO_INFER_LLAMA_CPP_OVERRIDES: raw }));
      if (result.plan === null) {
        rejected++;
        expect(result.issues.filter((i) => i.severity === 'error').length, `override #${n}: ${raw}`).toBeGreaterThan(0);
      }
    }
    expect(rejected).toBeGreaterThan(200);
  });

  it('the CLI answers mutated files with exit 0 or 2 and no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fuzz-'));
    const random = rng(99);
    try {
      const codes = new Set<number>();
      for (let n = 0; n < 40; n++) {
        const file = join(dir, `c${n}.toml`);
        writeFileSync(file, mutate(seeds[n % seeds.length], random));
        const overrides = n % 4 === 0 ? mutateJson(OVERRIDE_SEEDS[n % OVERRIDE_SEEDS.length], random) : '';
        const r = spawnSync(process.execPath, [CLI, 'config', 'check', file], {
          encoding: 'utf8',
          env: { ...process.env, AUTO_INFER_LLAMA_CPP_OVERRIDES: overrides },
        });
        expect([0, 2], `file #${n}: ${r.stdout}${r.stderr}`).toContain(r.status);
        expect(r.stdout + r.stderr).not.toMatch(/\n\s+at |internal error/);
        if (r.status === 2) expect(r.stdout).toMatch(/: error: /);
        codes.add(r.status!);
      }
      expect([...codes].sort()).toEqual([0, 2]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
