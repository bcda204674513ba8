// The system-tools check that the README's commands run first: with a tool
// missing and no way to install it, one clear line and a non-zero exit, and
// `npm test` stops there without running a single test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findCommand, searchPath, SYSTEM_TOOLS } from '../../scripts/system-tools.mjs';
import { REPO_ROOT } from '../support/daemon.ts';

const SCRIPT = join(REPO_ROOT, 'scripts/system-tools.mjs');
let noSshd: string;

beforeAll(() => {
  // Every tool the tests need but sshd, and no apt-get: nothing can be installed.
  noSshd = mkdtempSync(join(tmpdir(), 'tools-'));
  const dirs = searchPath();
  for (const tool of SYSTEM_TOOLS) {
    const path = findCommand(tool.command, dirs);
    if (tool.command !== 'sshd' && path !== null) symlinkSync(path, join(noSshd, tool.command));
  }
  for (const name of ['node', 'npm', 'sh', 'bash']) symlinkSync(findCommand(name, dirs)!, join(noSshd, name));
});
afterAll(() => rmSync(noSshd, { recursive: true, force: true }));

const check = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' });

describe('scripts/system-tools.mjs', () => {
  it('says nothing and exits 0 when every tool is there', () => {
    expect(check(['test'])).toMatchObject({ status: 0, stdout: '', stderr: '' });
  });

  it('without sshd and nothing to install with: one line naming the tool, its package and the install command; exit 1', () => {
    const result = check(['test'], { INFER_DEV_TOOLS_PATH: noSshd });
    expect(result.status).toBe(1);
    expect(result.stderr).toBe(
      '[system-tools] the tests need sshd (openssh-server), not found on this machine; install with: apt-get install -y openssh-server\n',
    );
  });

  it('the demo does not need sshd', () => {
    expect(check(['demo'], { INFER_DEV_TOOLS_PATH: noSshd }).status).toBe(0);
  });

  it('refuses an unknown purpose with usage, exit 2', () => {
    expect(check(['bench'])).toMatchObject({ status: 2, stderr: expect.stringMatching(/^usage: node scripts\/system-tools.mjs demo\|test/) });
  });

  it('stops `npm test` before any test runs', () => {
    const result = spawnSync('npm', ['test', '--silent'], { cwd: REPO_ROOT, env: { ...process.env, INFER_DEV_TOOLS_PATH: noSshd }, encoding: 'utf8', timeout: 60_000 });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('[system-tools] the tests need sshd (openssh-server)');
    expect(`${result.stdout}${result.stderr}`).not.toMatch(/RUN|Test Files|tsc/);
  });
});
