import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getHookDir, getMarkerPath } from '../../src/boot/hooks.ts';
import { runBootSteps, type BootOptions } from '../../src/boot/sequence.ts';
import { BootRecorder } from '../../src/boot/steps.ts';
import { makeCollectingLog, makeHookBody, makeTempRoot, removeTempRoot, writeScript } from './boot-fixtures.ts';
import { requireTools } from '../support/system-tools.ts';
import { silentLog } from '../../src/logging/log.ts';

let root: string;
let ran: string;
let roots: NonNullable<BootOptions['roots']>;
const baseEnv = () => ({ PATH: process.env.PATH, SUPERVISOR_SSHD: '0' });

beforeEach(async () => {
  root = await makeTempRoot('sequence');
  ran = join(root, 'ran.log');
  roots = { soft: join(root, 'soft'), hard: join(root, 'hard'), hooks: join(root, 'hooks'), state: join(root, 'state') };
  for (const name of ['app', 'data', 'workspace']) await mkdir(join(root, 'hard', 'image', name), { recursive: true });
  await mkdir(join(root, 'hard', 'volume'));
});

afterEach(async () => {
  await removeTempRoot(root);
});

const readRan = async () => (await readFile(ran, 'utf8').catch(() => '')).split('\n').filter(Boolean);
const hookDir = (stage: 'stage-1' | 'stage-2', kind: 'on-first-run' | 'on-every-run') => getHookDir(roots.hooks as string, stage, kind);
// A hook that logs its name and whether /soft/app is a link at that moment.
const linkProbe = (name: string) => `#!/bin/sh\nif [ -L '${join(root, 'soft', 'app')}' ]; then echo "${name} link" >> '${ran}'; else echo "${name} nolink" >> '${ran}'; fi\n`;

async function boot(options: BootOptions = {}) {
  const recorder = new BootRecorder();
  const { log, lines, text } = makeCollectingLog();
  const outcome = await runBootSteps({ env: baseEnv(), roots, log, recorder, hookKillGraceMs: 200, ...options });
  return { outcome, rows: recorder.rows(), lines, text };
}

describe('runBootSteps', () => {
  it("runs upstream's order: stage-1 hooks, links, stage-2 hooks, then sshd, bundle, shims, serve", async () => {
    await writeScript(join(hookDir('stage-1', 'on-first-run'), 'a'), linkProbe('s1-first'));
    await writeScript(join(hookDir('stage-1', 'on-every-run'), 'b'), linkProbe('s1-every'));
    await writeScript(join(hookDir('stage-2', 'on-first-run'), 'c'), linkProbe('s2-first'));
    await writeScript(join(hookDir('stage-2', 'on-every-run'), 'd'), linkProbe('s2-every'));
    const { outcome, rows } = await boot();
    expect(await readRan()).toEqual(['s1-first nolink', 's1-every nolink', 's2-first link', 's2-every link']);
    // sshd's preparation runs beside bundle, shims and serve (serving does not wait on ssh-keygen):
    // its rows come after the stage-2 hooks, the others keep their order.
    const names = rows.map((r) => `${r.name}: ${r.state}`);
    expect(names.filter((n) => !n.startsWith('sshd'))).toEqual([
      'hook stage-1/on-first-run.d/a: ok',
      'stage-1 first-run: ok',
      'hook stage-1/on-every-run.d/b: ok',
      `link ${join(root, 'soft', 'app')}: ok`,
      `link ${join(root, 'soft', 'data')}: ok`,
      `link ${join(root, 'soft', 'workspace')}: ok`,
      'hook stage-2/on-first-run.d/c: ok',
      'stage-2 first-run: ok',
      'hook stage-2/on-every-run.d/d: ok',
      'bundle: skipped',
      `shims ${join(root, 'soft', 'app', 'llama-cpp')}: ok`,
      `shims ${join(root, 'soft', 'app', 'vllm')}: ok`,
      `shims ${join(root, 'soft', 'app', 'sglang')}: ok`,
      'serve: skipped',
    ]);
    expect(names.indexOf('sshd: skipped')).toBeGreaterThan(names.indexOf('hook stage-2/on-every-run.d/d: ok'));
    expect(rows.every((r) => r.duration_ms !== null && !Number.isNaN(Date.parse(r.started_at)))).toBe(true);
    expect(outcome).toEqual({
      sshd: { plan: null, reason: 'SUPERVISOR_SSHD is off', started: false },
      bundle: { requested: false, archivePath: null, done: false },
      serve: { requested: false, configPath: null, done: false },
      engineServe: { vllm: { requested: false, configPath: null, done: false }, sglang: { requested: false, configPath: null, done: false } },
      mustExit: false,
      failures: [],
    });

    // Second start: first-run hooks are skipped, every-run hooks run again.
    const second = await boot();
    expect(await readRan()).toEqual(['s1-first nolink', 's1-every nolink', 's2-first link', 's2-every link', 's1-every link', 's2-every link']);
    expect(second.rows.filter((r) => r.name.includes('first-run')).map((r) => `${r.name}: ${r.state}`)).toEqual(['stage-1 first-run: skipped', 'stage-2 first-run: skipped']);
  });

  it('a failing first-run hook is shown and logged loudly, boot goes on, and it runs again at the next start', async () => {
    await writeScript(join(hookDir('stage-1', 'on-first-run'), '10-fails'), makeHookBody(ran, 'fails', 'echo "no network" >&2; exit 4'));
    await writeScript(join(hookDir('stage-2', 'on-every-run'), 'later'), makeHookBody(ran, 'later'));
    const first = await boot();
    expect(first.outcome.mustExit).toBe(false);
    expect(first.outcome.failures.map((f) => [f.name, f.message])).toEqual([['hook stage-1/on-first-run.d/10-fails', 'exit code 4: no network']]);
    expect(first.rows.find((r) => r.name === 'stage-1 first-run')).toMatchObject({ state: 'warning' });
    expect(first.lines.filter((l) => l.level === 'error').map((l) => l.message)).toContain(
      'BOOT STEP FAILED: hook stage-1/on-first-run.d/10-fails: exit code 4: no network -- boot goes on; see `supervisor status`',
    );
    expect(await readlink(join(root, 'soft', 'data'))).toBe(join(root, 'hard', 'image', 'data'));
    await expect(readFile(getMarkerPath(roots.state as string, 'stage-1'))).rejects.toMatchObject({ code: 'ENOENT' });
    await boot();
    expect(await readRan()).toEqual(['fails', 'later', 'fails', 'later']);
  });

  it('SUPERVISOR_ON_BOOT_ERROR=exit stops at the first failure and says the container must end', async () => {
    await writeScript(join(hookDir('stage-1', 'on-every-run'), '1-fails'), makeHookBody(ran, '1-fails', 'exit 1'));
    await writeScript(join(hookDir('stage-1', 'on-every-run'), '2-not-run'), makeHookBody(ran, '2-not-run'));
    await writeScript(join(hookDir('stage-2', 'on-every-run'), 'not-run'), makeHookBody(ran, 'stage-2'));
    const { outcome, rows, text } = await boot({ env: { ...baseEnv(), SUPERVISOR_ON_BOOT_ERROR: 'exit' } });
    expect(outcome.mustExit).toBe(true);
    expect(await readRan()).toEqual(['1-fails']);
    expect(rows.map((r) => r.name)).toEqual(['hook stage-1/on-every-run.d/1-fails']);
    expect(text()).toContain('the container stops (SUPERVISOR_ON_BOOT_ERROR=exit)');
  });

  it('kills a hook past SUPERVISOR_HOOK_TIMEOUT_S and goes on with the next', async () => {
    await writeScript(join(hookDir('stage-2', 'on-every-run'), '1-hangs'), '#!/bin/sh\nsleep 30\n');
    await writeScript(join(hookDir('stage-2', 'on-every-run'), '2-next'), makeHookBody(ran, 'next'));
    const started = Date.now();
    const { rows } = await boot({ env: { ...baseEnv(), SUPERVISOR_HOOK_TIMEOUT_S: '0.3' } });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(rows.find((r) => r.name === 'hook stage-2/on-every-run.d/1-hangs')).toMatchObject({ state: 'failed', message: 'timed out after 0.3 s, stopped with SIGTERM' });
    expect(await readRan()).toEqual(['next']);
  });

  it('takes the hooks dir from SUPERVISOR_HOOKS_DIR', async () => {
    const elsewhere = join(root, 'elsewhere');
    await writeScript(join(getHookDir(elsewhere, 'stage-1', 'on-every-run'), 'x'), makeHookBody(ran, 'elsewhere'));
    await boot({ roots: { ...roots, hooks: undefined }, env: { ...baseEnv(), SUPERVISOR_HOOKS_DIR: elsewhere } });
    expect(await readRan()).toEqual(['elsewhere']);
  });

  it('repairs a dangling /soft/data link and leaves a real /soft/app directory alone, with a warning', async () => {
    await mkdir(join(root, 'soft', 'app'), { recursive: true });
    await writeFile(join(root, 'soft', 'app', 'mine'), 'x');
    await symlink(join(root, 'gone'), join(root, 'soft', 'data'));
    const { rows, outcome } = await boot();
    expect(await readlink(join(root, 'soft', 'data'))).toBe(join(root, 'hard', 'image', 'data'));
    expect(rows.find((r) => r.name === `link ${join(root, 'soft', 'app')}`)?.state).toBe('warning');
    expect(await readFile(join(root, 'soft', 'app', 'mine'), 'utf8')).toBe('x');
    expect(outcome.failures).toEqual([]);
  });

  it("counts only this boot's failures when the recorder is shared", async () => {
    const recorder = new BootRecorder();
    recorder.add({ name: 'earlier', state: 'failed', message: 'old' });
    const outcome = await runBootSteps({ env: { ...baseEnv(), SUPERVISOR_ON_BOOT_ERROR: 'exit' }, roots, recorder });
    expect(outcome).toMatchObject({ mustExit: false, failures: [] });
    expect(recorder.rows().at(-1)?.name).toBe('serve');
  });
});

describe('runBootSteps env toggles', () => {
  it('asks for nothing when the variables are unset, and warns about values it does not understand', async () => {
    const { rows, outcome, lines } = await boot({ env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT: 'maybe', AUTO_INFER_LLAMA_CPP_PKG_PATH: '/x.tgz' } });
    const warning = 'AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT="maybe" is not a boolean (on: 1, true, yes, on; off: 0, false, no, off, empty); treating it as off';
    expect(rows[0]).toMatchObject({ name: 'environment', state: 'warning', message: warning });
    expect(lines.some((l) => l.level === 'warn' && l.message === warning)).toBe(true);
    expect(rows.find((r) => r.name === 'bundle')).toMatchObject({ state: 'skipped', message: 'AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT is off' });
    expect(outcome.bundle.requested).toBe(false);
  });

  it('asks for the bundle only when switched on with a path; runs the installer before the shims when given one', async () => {
    const onlyFlag = await boot({ env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT: 'yes' } });
    expect(onlyFlag.outcome.bundle.requested).toBe(false);
    expect(onlyFlag.rows.find((r) => r.name === 'bundle')?.state).toBe('warning');

    const env = { ...baseEnv(), AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT: 'on', AUTO_INFER_LLAMA_CPP_PKG_PATH: '/pkgs/llama.tgz' };
    const noInstaller = await boot({ env });
    expect(noInstaller.outcome.bundle).toEqual({ requested: true, archivePath: '/pkgs/llama.tgz', done: false });
    expect(noInstaller.rows.find((r) => r.name === 'bundle')).toMatchObject({ state: 'warning', message: '/pkgs/llama.tgz: not available (this build has no bundle installer)' });

    const calls: string[] = [];
    const withInstaller = await boot({
      env,
      log: silentLog,
      actions: { installBundle: async (path) => (calls.push(`install ${path}`), { state: 'ok', message: 'installed' }) },
    });
    expect(calls).toEqual(['install /pkgs/llama.tgz']);
    const names = withInstaller.rows.map((r) => r.name);
    expect(names.indexOf('bundle')).toBeLessThan(names.findIndex((n) => n.startsWith('shims')));
    expect(withInstaller.rows.find((r) => r.name === 'bundle')).toMatchObject({ state: 'ok', message: 'installed' });
    expect(withInstaller.outcome.bundle.done).toBe(true);

    const failing = await boot({ env, actions: { installBundle: async () => Promise.reject(new Error('bad archive')) } });
    expect(failing.outcome.failures.map((f) => [f.name, f.message])).toEqual([['bundle', 'bad archive']]);
    expect(failing.outcome.mustExit).toBe(false);
  });

  it('asks for auto-serve only when switched on and the config file exists', async () => {
    const config = join(root, 'llama.toml');
    const missing = await boot({ env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_ON_BOOT: '1', AUTO_INFER_LLAMA_CPP_CONFIG: config } });
    expect(missing.outcome.serve.requested).toBe(false);
    expect(missing.rows.find((r) => r.name === 'serve')).toMatchObject({ state: 'warning', message: `config file not found at ${config}; nothing served` });

    await writeFile(config, '[master]\n');
    const offWithConfig = await boot({ env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_CONFIG: config } });
    expect(offWithConfig.outcome.serve.requested).toBe(false);

    const on = await boot({ env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_ON_BOOT: 'TRUE', AUTO_INFER_LLAMA_CPP_CONFIG: config } });
    expect(on.outcome.serve).toEqual({ requested: true, configPath: config, done: false });
    expect(on.rows.some((r) => r.name === 'serve')).toBe(false);

    const served: string[] = [];
    const withAction = await boot({
      env: { ...baseEnv(), AUTO_INFER_LLAMA_CPP_ON_BOOT: 'TRUE', AUTO_INFER_LLAMA_CPP_CONFIG: config },
      actions: { serve: async (path) => (served.push(path), { state: 'ok', message: '2 instances starting' }) },
    });
    expect(served).toEqual([config]);
    expect(withAction.rows.at(-1)).toMatchObject({ name: 'serve', state: 'ok', message: '2 instances starting' });
  });

  it('serves upstream vLLM and SGLang files when their ON_BOOT switch is on, after llama.cpp, each bundle step first', async () => {
    const vllm = join(root, 'vllm.toml');
    const sglang = join(root, 'sglang.toml');
    await writeFile(vllm, '[master]\n');
    await writeFile(sglang, '[master]\n');
    const calls: string[] = [];
    const env = { ...baseEnv(), AUTO_INFER_VLLM_ON_BOOT: '1', AUTO_INFER_VLLM_CONFIG: vllm, AUTO_INFER_VLLM_BUNDLE_ON_BOOT: 'true', AUTO_INFER_SGLANG_ON_BOOT: 'true', AUTO_INFER_SGLANG_CONFIG: sglang };
    const { rows, outcome } = await boot({
      env,
      actions: {
        serve: async (path, kind) => (calls.push(`serve ${kind} ${path}`), { state: 'ok', message: 'started' }),
        installEngineBundle: async (kind) => (calls.push(`bundle ${kind}`), { state: 'ok', message: 'installed' }),
      },
    });
    expect(calls).toEqual(['bundle vllm', `serve vllm ${vllm}`, `serve sglang ${sglang}`]);
    expect(rows.map((r) => `${r.name}: ${r.state}`).slice(-5)).toEqual(['serve: skipped', 'bundle vllm: ok', 'serve vllm: ok', 'bundle sglang: skipped', 'serve sglang: ok']);
    expect(outcome.engineServe.vllm).toEqual({ requested: true, configPath: vllm, done: true });
    const unset = await boot({ env: { ...baseEnv(), AUTO_INFER_SGLANG_ON_BOOT: '1' } });
    expect(unset.rows.find((r) => r.name === 'serve sglang')).toMatchObject({ state: 'warning', message: 'AUTO_INFER_SGLANG_ON_BOOT is on but AUTO_INFER_SGLANG_CONFIG is not set' });
    expect(unset.rows.some((r) => r.name.includes('vllm') && !r.name.startsWith('shims'))).toBe(false);
  });

  it('prepares sshd with its own host keys once, starts it through the action, and keeps the keys on the next boot', async () => {
    const { sshd } = requireTools(['sshd', 'ssh-keygen'], 'the sshd boot step (real sshd -t and ssh-keygen -A)');
    const etc = join(root, 'etc');
    await mkdir(join(etc, 'ssh'), { recursive: true });
    await writeFile(join(etc, 'ssh', 'sshd_config'), 'Port 2200\n');
    await writeFile(join(etc, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    roots.ssh = { sshd, sshdConfig: join(etc, 'ssh', 'sshd_config'), hostKeyRoot: root, runDir: join(root, 'run', 'sshd'), passwd: join(etc, 'passwd'), logFile: join(root, 'log', 'sshd.log') };
    const env = { PATH: process.env.PATH };
    const started: number[] = [];
    const first = await boot({ env, validateSshdConfig: false, actions: { startSshd: (plan) => void started.push(plan.port) } });
    expect(started).toEqual([2200]);
    expect(first.outcome.sshd).toMatchObject({ reason: null, started: true, plan: { name: 'sshd', port: 2200 } });
    expect(first.rows.find((r) => r.name === 'sshd host keys')).toMatchObject({ state: 'ok', message: 'generated ecdsa, ed25519, rsa' });
    expect(first.rows.find((r) => r.name === 'sshd start')).toMatchObject({ state: 'ok' });
    const key = await readFile(join(etc, 'ssh', 'ssh_host_ed25519_key'), 'utf8');
    const second = await boot({ env, validateSshdConfig: false, actions: { startSshd: () => Promise.reject(new Error('port 2200 is taken')) } });
    expect(second.rows.find((r) => r.name === 'sshd host keys')).toMatchObject({ state: 'ok', message: 'kept existing ecdsa, ed25519, rsa' });
    expect(await readFile(join(etc, 'ssh', 'ssh_host_ed25519_key'), 'utf8')).toBe(key);
    expect(second.outcome.sshd.started).toBe(false);
    expect(second.outcome.failures.map((f) => [f.name, f.message])).toEqual([['sshd start', 'port 2200 is taken']]);
    // Boot went on after the failure.
    expect(second.rows.some((r) => r.name === 'serve')).toBe(true);
  });
});
