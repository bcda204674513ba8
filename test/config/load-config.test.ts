// The effectful edge of config loading, on real files and through the built
// CLI: odd file types, endless or huge files, names the OS cannot take and NUL
// bytes all give exit 2 naming the file (and key), never an internal error, a
// hang or a runaway read.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CONFIG_BYTES, readLaunchPlan } from '../../src/config/load-config.ts';
import { CLI } from '../support/daemon.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'load-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string | Buffer) => {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
};

// `supervisor config check FILE`, bounded: a hang or a runaway read is a failure, not a stuck suite.
function check(file: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, 'config', 'check', file], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  expect(r.signal, `config check ${file} was killed (hung or ran away)`).toBeNull();
  const out = r.stdout + r.stderr;
  expect(out).not.toMatch(/\n\s+at |internal error/);
  return { code: r.status, out };
}

describe('config check on files that are not plain config text', () => {
  it('/dev/zero: refused at once as a character device, nothing read', () => {
    const r = check('/dev/zero');
    expect(r.code).toBe(2);
    expect(r.out).toContain('/dev/zero: error: cannot read config: a character device, not a regular file');
  });

  it('a FIFO: refused without waiting for a writer', () => {
    const fifo = join(dir, 'config.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const r = check(fifo);
    expect(r.code).toBe(2);
    expect(r.out).toContain(`${fifo}: error: cannot read config: a FIFO, not a regular file`);
  });

  it('a directory, a missing file', () => {
    expect(check(dir).out).toContain(`${dir}: error: cannot read config: a directory, not a regular file`);
    expect(check(join(dir, 'none.toml')).out).toContain('cannot read config: no such file');
  });

  it(`a file over ${MAX_CONFIG_BYTES / 1024 / 1024} MiB is refused with its size and the limit`, () => {
    const file = write('big.toml', Buffer.alloc(MAX_CONFIG_BYTES + 1, '#'));
    const r = check(file);
    expect(r.code).toBe(2);
    expect(r.out).toContain(`${file}: error: cannot read config: it is ${MAX_CONFIG_BYTES + 1} bytes; a config may be at most ${MAX_CONFIG_BYTES} bytes`);
    // At the limit is fine.
    const fits = write('fits.toml', Buffer.alloc(MAX_CONFIG_BYTES, '#'));
    expect(check(fits).code).toBe(0);
  });
});

describe('values the OS cannot take', () => {
  it('a model file name over 255 bytes: exit 2 at the model key, not an internal error', () => {
    const model = `/models/${'m'.repeat(300)}.gguf`;
    const file = write('long-model.toml', `[instance.x.server]\nmodel = "${model}"\n`);
    const r = check(file);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(new RegExp(`${file}:2:1: error: instance\\.x\\.server\\.model: .*a name in this path is 305 bytes long \\(at most 255\\)`));
  });

  it('a NUL byte in model, log_file, extra_args or llama_cpp_path: exit 2 with the key path', () => {
    const file = write(
      'nul.toml',
      '[master]\nllama_cpp_path = "/opt/llama\\u0000/bin/llama-server"\n[instance.x.control]\nlog_file = "/tmp/x\\u0000.log"\n[instance.x.server]\nmodel = "/m\\u0000.gguf"\nextra_args = ["--a", "b\\u0000"]\n',
    );
    const r = check(file);
    expect(r.code).toBe(2);
    for (const [line, key] of [[2, 'master.llama_cpp_path'], [4, 'instance.x.control.log_file'], [6, 'instance.x.server.model'], [7, 'instance.x.server.extra_args.1']]) {
      expect(r.out).toContain(`${file}:${line}:1: error: ${key}: contains a NUL byte`);
    }
  });

  it('a NUL byte through AUTO_INFER_LLAMA_CPP_OVERRIDES: exit 2 naming the variable and the key', () => {
    const file = write('plain.toml', '[instance.x.server]\nport = 9000\n');
    const r = check(file, { AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"instance":{"x":{"server":{"model":"/m\\u0000.gguf"}}}}' });
    expect(r.code).toBe(2);
    expect(r.out).toContain('AUTO_INFER_LLAMA_CPP_OVERRIDES: error: instance.x.server.model: contains a NUL byte');
  });

  it('readLaunchPlan itself never throws on them', () => {
    const file = write('nul-model.toml', '[instance.x.server]\nmodel = "/m\\u0000.gguf"\n');
    expect(readLaunchPlan(file, {}).plan).toBeNull();
    const long = write('long.toml', `[instance.x.server]\nmodel = "/${'m'.repeat(4200)}"\n`);
    expect(readLaunchPlan(long, {}).issues).toEqual([expect.objectContaining({ severity: 'error', path: 'instance.x.server.model', message: expect.stringContaining('at most 4095') })]);
  });
});
