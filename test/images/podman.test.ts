// The real images with podman (no Docker engine, no registry): built by
// `ENGINE=podman BASE_IMAGE=<local Debian 12> WITH_DEV_TOOLS=0 docker/build.sh`,
// then inspected, then run with docker/run.sh: a real llama.cpp bundle, the
// tiny model and a config, sshd with a key, the published ports, the
// HEALTHCHECK, `podman stop`, a restart, and a bare `podman run -d`.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../../tools/tiny-model/tiny-model.ts';
import { freePorts, llamaServerBinDir } from '../support/llama-server.ts';
import { requireTools } from '../support/system-tools.ts';
import { buildImages, containerStatus, makeBundle, podman, removeContainer, run, STAGE1, STAGE2, startServing, writeHook, writeServingConfig } from './support/podman.mjs';

const dir = mkdtempSync(join(tmpdir(), 'images-test-'));
const SERVING = `infer-dev-test-serving-${process.pid}`;
const BARE = `infer-dev-test-bare-${process.pid}`;
const PASSWORD = `infer-dev-test-password-${process.pid}`;

// Polls `probe` until it returns a value, every 200 ms, for at most timeoutMs; the error names what was awaited and the last thing seen.
async function waitFor<T>(what: string, probe: () => T | undefined, { timeoutMs = 60_000, last = () => '' }: { timeoutMs?: number; last?: () => string } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last() ? `; last seen: ${last()}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

beforeAll(() => {
  requireTools(['podman', 'runc', 'mmdebstrap', 'ssh', 'ssh-keygen'], 'the image tests');
  const { baseMs, buildMs } = buildImages();
  console.log(`[images] base image ready in ${(baseMs / 1000).toFixed(1)} s, both images built in ${(buildMs / 1000).toFixed(1)} s`);
}, 1_500_000);

afterAll(() => {
  removeContainer(SERVING);
  removeContainer(BARE);
  removeContainer(PASSWORD);
  rmSync(dir, { recursive: true, force: true });
});

// `podman healthcheck run` (podman without systemd runs the HEALTHCHECK only when asked), and what it recorded.
function healthcheck(container: string): { code: number | null; status: string; output: string } {
  const check = run('podman', ['healthcheck', 'run', container]);
  const health = JSON.parse(podman(['inspect', container]))[0].State.Health;
  return { code: check.code, status: health?.Status, output: health?.Log?.at(-1)?.Output?.trim() };
}

// One throwaway container that runs a shell script in the image instead of boot.
function inImage(script: string): string {
  return podman(['run', '--rm', '--entrypoint', '/bin/sh', STAGE2, '-c', script]);
}

describe('the stage-2 image', () => {
  it('has the supervisor as ENTRYPOINT, no CMD, SIGTERM, the HEALTHCHECK, the ports and the cache variables', () => {
    const [image] = JSON.parse(podman(['image', 'inspect', STAGE2]));
    expect(image.Config.Entrypoint).toEqual(['supervisor', 'boot', '--']);
    // The base's CMD ["/bin/bash"] is cleared: a bare run keeps boot alive instead of a bash without a terminal.
    expect(image.Config.Cmd ?? null).toBeNull();
    expect(image.Config.StopSignal).toBe('SIGTERM');
    expect(Object.keys(image.Config.ExposedPorts).sort()).toEqual(['11899/tcp', '22/tcp', '8080/tcp']);
    expect(image.Config.Env).toEqual(expect.arrayContaining(['XDG_CACHE_HOME=/soft/workspace/.cache']));
    // docker format (podman's OCI format would have dropped it).
    expect(image.Healthcheck).toMatchObject({ Test: ['CMD', 'supervisor', 'health'], Retries: 3 });
  });

  it('carries Node >= 20 and the supervisor only: no npm, no sources, no dev dependencies, koffi for this platform alone', () => {
    const out = inImage(
      [
        'node --version',
        'echo npm=$(command -v npm || echo none) opt-npm=$(test -e /opt/npm && echo yes || echo no) build=$(test -e /build && echo yes || echo no)',
        'ls /opt/infer-dev | tr "\\n" " "; echo',
        'ls /opt/infer-dev/node_modules/koffi/build/koffi | tr "\\n" " "; echo',
        'for p in vitest typescript esbuild openai @anthropic-ai/sdk ajv yaml; do test -e /opt/infer-dev/node_modules/$p/package.json && echo "dev:$p"; done; echo dev-end',
        'du -sk /opt/infer-dev | cut -f1',
        'readlink /usr/local/bin/supervisor',
      ].join('; '),
    );
    const [nodeVersion, tools, top, koffi, ...rest] = out.trim().split('\n');
    expect(Number(/^v(\d+)\./.exec(nodeVersion)?.[1])).toBeGreaterThanOrEqual(20);
    expect(tools).toBe('npm=none opt-npm=no build=no');
    expect(top.trim().split(' ').sort()).toEqual(['config-examples', 'dist', 'node_modules', 'package.json']);
    expect(koffi.trim()).toBe('linux_x64');
    expect(rest.slice(0, rest.indexOf('dev-end'))).toEqual([]);
    const supervisorKb = Number(rest[rest.indexOf('dev-end') + 1]);
    // Target: at most 60 MB besides the Node binary.
    expect(supervisorKb).toBeLessThan(60 * 1024);
    expect(rest.at(-1)).toBe('/opt/infer-dev/dist/cli.js');
  });

  it('holds no host keys and no secrets; sshd takes keys only and no root password; me is locked with sudo', () => {
    const out = inImage(
      [
        'ls /etc/ssh/ | grep -c ssh_host_ || true',
        'ls -A /run/secrets 2>/dev/null | wc -l',
        'getent shadow me | cut -d: -f2',
        'id -u me; id -g me; id -nG me',
        'sudo -n -l -U me | grep -c NOPASSWD',
        'mkdir -p /run/sshd; ssh-keygen -q -t ed25519 -N "" -f /tmp/k && /usr/sbin/sshd -T -h /tmp/k | grep -E "^(passwordauthentication|permitrootlogin|kbdinteractiveauthentication|usepam) " | sort | tr "\\n" ";"',
      ].join('; '),
    );
    const [hostKeys, secrets, shadow, uid, gid, groups, nopasswd, sshd] = out.trim().split('\n');
    expect(hostKeys).toBe('0');
    expect(secrets).toBe('0');
    expect(shadow).toBe('!');
    expect([uid, gid]).toEqual(['1000', '1000']);
    expect(groups.split(' ')).toContain('sudo');
    expect(nopasswd).toBe('1');
    expect(sshd).toBe('kbdinteractiveauthentication no;passwordauthentication no;permitrootlogin without-password;usepam yes;');
    // Nothing secret-looking in the build history either (build args are recorded there).
    const history = podman(['history', '--no-trunc', '--format', '{{.CreatedBy}}', STAGE2]);
    expect(history).not.toMatch(/PASSWORD=|TOKEN=|SECRET=|BEGIN [A-Z ]*PRIVATE KEY/);
  });

  it('has the layout, the hook folders and the apt/proxy helpers; stage-2 adds only Node and the supervisor to stage-1', () => {
    const out = inImage(
      [
        'for d in /hard/image/app /hard/image/data /hard/image/workspace /hard/volume /soft; do test -d $d || echo "missing $d"; done',
        'for s in stage-1 stage-2; do for k in on-first-run on-every-run; do test -d /etc/infer-dev/hooks/$s/$k.d || echo "missing hooks $s/$k"; done; done',
        'infer-dev-proxy status',
        'ls /var/lib/apt/lists | grep -vc "^lock$\\|^partial$\\|^auxfiles$" || true',
        'ls /etc/apt/apt.conf.d | grep -c infer-dev-build-proxy || true',
      ].join('; '),
    );
    expect(out.trim().split('\n')).toEqual(['proxy off', '0', '0']);
    const size = (image: string) => Number(JSON.parse(podman(['image', 'inspect', image]))[0].Size);
    const addedMb = (size(STAGE2) - size(STAGE1)) / 1e6;
    // The 95 MB Node binary plus about 20 MB of supervisor: nothing of the builder came along.
    expect(addedMb).toBeGreaterThan(90);
    expect(addedMb).toBeLessThan(160);
  });
});

describe('apt during the build (docker/stage-1/apt-setup.sh, in the stage-1 image)', () => {
  it('points the distribution archives (not the CUDA repository) at APT_MIRROR with APT_PROXY, and restores both at the end', () => {
    const script = [
      "printf 'deb http://deb.debian.org/debian bookworm main\\ndeb http://security.debian.org/debian-security bookworm-security main\\n' > /etc/apt/sources.list",
      "printf 'Types: deb\\nURIs: http://archive.ubuntu.com/ubuntu/\\nSuites: noble\\n' > /etc/apt/sources.list.d/ubuntu.sources",
      "echo 'deb [signed-by=/k.gpg] https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/ /' > /etc/apt/sources.list.d/cuda.list",
      'cp -a /etc/apt /tmp/apt.orig',
      'S=/usr/local/share/infer-dev/stage-1/apt-setup.sh',
      'APT_MIRROR=http://mirror.invalid:8080/ APT_PROXY=http://proxy.invalid:3142 $S begin >/dev/null',
      'grep -h "^deb \\|^URIs:" /etc/apt/sources.list /etc/apt/sources.list.d/*; cat /etc/apt/apt.conf.d/90infer-dev-build-proxy',
      'APT_MIRROR=http://mirror.invalid:8080/ $S end',
      'diff -r /tmp/apt.orig /etc/apt && echo restored',
    ].join('\n');
    const out = podman(['run', '--rm', '--entrypoint', '/bin/sh', STAGE1, '-euc', script]).trim().split('\n');
    expect(out).toEqual([
      'deb http://mirror.invalid:8080/debian bookworm main',
      'deb http://mirror.invalid:8080/debian-security bookworm-security main',
      'deb [signed-by=/k.gpg] https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/ /',
      'URIs: http://mirror.invalid:8080/ubuntu/',
      'Acquire::http::Proxy "http://proxy.invalid:3142";',
      'Acquire::https::Proxy "http://proxy.invalid:3142";',
      'restored',
    ]);
  });
});

describe('the dev tools installer (WITH_DEV_TOOLS=1)', () => {
  it('fails at once, naming the host and the way out, when a download cannot be reached', () => {
    const r = run('podman', ['run', '--rm', '-e', 'PIXI_URL=http://127.0.0.1:9/pixi.tar.gz', '--entrypoint', '/usr/local/share/infer-dev/stage-2/install-dev-tools.sh', STAGE2, 'pixi'], { timeoutMs: 60_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('install-dev-tools: cannot download pixi from http://127.0.0.1:9/pixi.tar.gz (host 127.0.0.1:9 unreachable from this build?)');
    expect(r.stderr).toContain('build without it: WITH_DEV_TOOLS=0, or DEV_TOOLS="..." without pixi');
    expect(r.ms).toBeLessThan(30_000);
  });
});

describe('a serving container, started with docker/run.sh', () => {
  let ports: { ssh: number; llama: number; gateway: number };
  const key = join(dir, 'id_ed25519');
  const hooksLog = '/var/log/infer-dev-test-hooks.log';

  const ssh = (args: string[], extra: string[] = []) =>
    run('ssh', [
      '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10',
      ...extra, '-p', String(ports.ssh), 'me@127.0.0.1', ...args,
    ], { timeoutMs: 30_000 });

  const chat = async (port: number) => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', max_tokens: 8, messages: [{ role: 'user', content: 'hello' }] }),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: (await res.json()) as { choices?: unknown[] } };
  };

  const instanceReady = (what: string) =>
    // sshd's preparation runs beside the bundle and serve steps: either may be ready first.
    waitFor(what, () => {
      const rows = containerStatus(SERVING);
      return ['sshd', 'tiny'].every((name) => rows?.some((r) => r.name === name && r.state === 'ready')) ? rows : undefined;
    }, {
      last: () => JSON.stringify(containerStatus(SERVING)?.map((r) => `${r.name} ${r.state}`) ?? 'no answer'),
    });

  beforeAll(async () => {
    const [ssh, llama, gateway] = await freePorts(3);
    ports = { ssh, llama, gateway };
    const models = join(dir, 'tiny-model');
    mkdirSync(models);
    await writeTinyModel(join(models, 'tiny.gguf'));
    const keygen = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    if (keygen.status !== 0) throw new Error(`ssh-keygen failed: ${keygen.stderr}`);
    startServing({
      name: SERVING,
      ports,
      bundle: makeBundle(llamaServerBinDir(), dir),
      config: writeServingConfig(join(dir, 'tiny.toml')),
      modelDir: models,
      publicKey: `${key}.pub`,
      extra: [
        '-v', `${writeHook(join(dir, 'first-run'), hooksLog)}:/etc/infer-dev/hooks/stage-2/on-first-run.d/50-test-first-run:ro`,
        '-v', `${writeHook(join(dir, 'every-run'), hooksLog)}:/etc/infer-dev/hooks/stage-2/on-every-run.d/50-test-every-run:ro`,
      ],
    });
    await instanceReady('the instance tiny to be ready after podman run');
  }, 180_000);

  it('has the supervisor as PID 1, the four toggles and the key in its environment, and the instance ready', () => {
    expect(podman(['exec', SERVING, 'cat', '/proc/1/cmdline']).split('\0').filter(Boolean)).toEqual(['node', '/usr/local/bin/supervisor', 'boot', '--']);
    const [container] = JSON.parse(podman(['inspect', SERVING]));
    const env: string[] = container.Config.Env;
    for (const toggle of ['AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT=1', 'AUTO_INFER_LLAMA_CPP_ON_BOOT=1']) expect(env).toContain(toggle);
    expect(env.some((e) => e.startsWith('AUTO_INFER_LLAMA_CPP_PKG_PATH=/tmp/llama-cpp-cpu.tar.gz'))).toBe(true);
    expect(env.some((e) => e.startsWith('AUTO_INFER_LLAMA_CPP_CONFIG=/tmp/tiny.toml'))).toBe(true);
    expect(env.some((e) => e.startsWith('SSH_AUTHORIZED_KEYS=ssh-ed25519 '))).toBe(true);
    const rows = containerStatus(SERVING)!;
    expect(rows.map((r) => `${r.name} ${r.state}`)).toEqual(['sshd ready', 'tiny ready']);
    // The bundle's llama-server, installed at boot under /soft/app.
    expect(podman(['exec', SERVING, 'readlink', '-f', `/proc/${rows[1].pid}/exe`]).trim()).toMatch(/^\/hard\/image\/app\/llama-cpp\.d\/[0-9a-f]+\/bin\/llama-server$/);
  });

  it('answers a chat completion through the published 8080 port and through the gateway port', async () => {
    const direct = await chat(ports.llama);
    expect(direct.status).toBe(200);
    expect(direct.body.choices).toHaveLength(1);
    const gateway = await chat(ports.gateway);
    expect(gateway.status).toBe(200);
    expect(gateway.body.choices).toHaveLength(1);
  });

  it('lets me in over SSH with the key (login environment included), and refuses a password login', () => {
    const login = ssh(['id -un; echo "$XDG_CACHE_HOME"; command -v supervisor; sudo -n supervisor health'], ['-i', key, '-o', 'IdentitiesOnly=yes']);
    expect(login.stderr).toBe('');
    expect(login.code).toBe(0);
    expect(login.stdout.trim().split('\n')).toEqual(['me', '/soft/workspace/.cache', '/usr/local/bin/supervisor', 'healthy: 2/2 ready']);
    const password = ssh(['true'], ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive']);
    expect(password.code).toBe(255);
    // The server offers no password method at all.
    expect(password.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  it('is healthy for `podman healthcheck run`', () => {
    expect(healthcheck(SERVING)).toEqual({ code: 0, status: 'healthy', output: 'healthy: 2/2 ready' });
  });

  it('stops within 2 s of `podman stop -t 10` with exit code 0; after `podman start` only the every-run hooks run again', async () => {
    const keyBefore = podman(['exec', SERVING, 'cat', '/etc/ssh/ssh_host_ed25519_key.pub']);
    const stop = run('podman', ['stop', '-t', '10', SERVING]);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.ms).toBeLessThan(2000);
    const [stopped] = JSON.parse(podman(['inspect', SERVING]));
    expect(stopped.State).toMatchObject({ Running: false, ExitCode: 0 });

    podman(['start', SERVING]);
    await instanceReady('the instance tiny to be ready after podman start');
    const hooks = podman(['exec', SERVING, 'cat', hooksLog]).trim().split('\n').map((l) => l.split(' ')[0]);
    expect(hooks).toEqual(['50-test-first-run', '50-test-every-run', '50-test-every-run']);
    // The same host key: made once per container, not per start.
    expect(podman(['exec', SERVING, 'cat', '/etc/ssh/ssh_host_ed25519_key.pub'])).toBe(keyBefore);
    expect((await chat(ports.gateway)).status).toBe(200);
  });
});

describe('a bare `podman run -d IMAGE`', () => {
  beforeAll(() => {
    removeContainer(BARE);
    podman(['run', '-d', '--name', BARE, STAGE2]);
  });

  it('stays up with sshd and nothing else: no CMD, no instance, every boot step done', async () => {
    await waitFor('sshd to be ready in the bare container', () => containerStatus(BARE)?.find((r) => r.name === 'sshd' && r.state === 'ready'), {
      last: () => JSON.stringify(containerStatus(BARE)),
    });
    expect(containerStatus(BARE)!.map((r) => r.name)).toEqual(['sshd']);
    const table = podman(['exec', BARE, 'supervisor', 'status']);
    // The last boot steps ran (skipped: no toggles), so boot is past the point where a CMD would start.
    expect(table).toMatch(/^serve\s+skipped\s/m);
    const ps = podman(['exec', BARE, 'ps', '-eo', 'pid=,comm=']).trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(ps.filter(([, comm]) => comm !== 'ps').map(([pid, comm]) => `${pid === '1' ? 'pid1 ' : ''}${comm}`).sort()).toEqual(['pid1 node', 'sshd']);
    // An observation window, not an ordering wait: a container whose CMD is a bash without a
    // terminal ends within milliseconds of boot's last step; this one must still run a second later.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(JSON.parse(podman(['inspect', BARE]))[0].State.Running).toBe(true);
    expect(healthcheck(BARE)).toEqual({ code: 0, status: 'healthy', output: 'healthy: 1/1 ready' });
  });
});

describe('a container with SSH_PASSWORD', () => {
  let port: number;
  beforeAll(async () => {
    [port] = await freePorts(1);
    removeContainer(PASSWORD);
    podman(['run', '-d', '--name', PASSWORD, '-p', `127.0.0.1:${port}:22`, '-e', 'SSH_PASSWORD=correct horse', STAGE2]);
    await waitFor('sshd to be ready', () => containerStatus(PASSWORD)?.find((r) => r.name === 'sshd' && r.state === 'ready'));
  });

  // ssh reads the password from SSH_ASKPASS (OpenSSH >= 8.4 with SSH_ASKPASS_REQUIRE=force): no terminal, no sshpass.
  const passwordLogin = (user: string, password: string) => {
    const askpass = join(dir, `askpass-${user}`);
    writeFileSync(askpass, `#!/bin/sh\necho '${password}'\n`, { mode: 0o755 });
    return run('ssh', [
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=10', '-o', 'NumberOfPasswordPrompts=1',
      '-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password', '-p', String(port), `${user}@127.0.0.1`, 'id -un',
    ], { env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' }, timeoutMs: 30_000 });
  };

  it('lets me in with that password, and still not root', () => {
    const me = passwordLogin('me', 'correct horse');
    expect(me.stderr).toBe('');
    expect(me.stdout.trim()).toBe('me');
    expect(passwordLogin('me', 'wrong').code).toBe(255);
    expect(passwordLogin('root', 'correct horse').code).toBe(255);
  });

  it('infer-dev-proxy turns a proxy on and off for apt and login shells', () => {
    expect(podman(['exec', PASSWORD, 'infer-dev-proxy', 'on', 'http://proxy.invalid:3128']).trim()).toMatch(/^proxy on: http:\/\/proxy.invalid:3128/);
    expect(podman(['exec', PASSWORD, 'bash', '-lc', 'echo "$https_proxy"; apt-config dump | grep -c proxy.invalid']).trim().split('\n')).toEqual(['http://proxy.invalid:3128', '2']);
    podman(['exec', PASSWORD, 'infer-dev-proxy', 'off']);
    expect(podman(['exec', PASSWORD, 'bash', '-lc', 'echo "[$https_proxy]"; infer-dev-proxy status']).trim().split('\n')).toEqual(['[]', 'proxy off']);
  });
});
