// `supervisor health` without a daemon: Docker's HEALTHCHECK gets 1 (only 0 and 1 mean
// something to Docker), --strict keeps the documented 3 (no daemon). Against the built CLI.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '../../dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'health-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function health(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'health', ...args], { env: { ...process.env, SUPERVISOR_SOCKET: join(dir, 'none.sock') }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('supervisor health with no daemon', () => {
  it('answers 1 with one "unhealthy:" line for Docker', () => {
    const r = health();
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^unhealthy: supervisor daemon is not running \(no answer on .*none\.sock\)\n$/);
  });

  it('answers 3 (no daemon) under --strict', () => {
    const r = health('--strict');
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/daemon is not running/);
  });

  it('answers 1 for Kubernetes under --live and --ready (no daemon is neither alive nor ready)', () => {
    expect(health('--live')).toMatchObject({ code: 1, stdout: expect.stringMatching(/^unhealthy: supervisor daemon is not running/) });
    expect(health('--ready')).toMatchObject({ code: 1, stdout: expect.stringMatching(/^not ready: supervisor daemon is not running/) });
  });

  it('refuses two modes at once with a usage error (2)', () => {
    const r = health('--live', '--ready');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--live and --ready cannot be combined/);
  });
});
