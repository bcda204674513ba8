#!/usr/bin/env node
// The system tools the demo and the tests need, in one list, checked once.
// Missing ones are installed with apt-get when we are root and have it;
// otherwise this stops at once with one line that names them and the command
// that installs them. `npm run demo`, `npm test` and .ci/run all come here.
//
//   node scripts/system-tools.mjs demo|test [--check]
//     --check: only say what is missing (exit 1), never install
//   INFER_DEV_TOOLS_PATH: where to look (default: PATH, then /usr/sbin and /sbin)
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Each tool: the command looked for, the Debian/Ubuntu package that brings it, and what needs it. */
export const SYSTEM_TOOLS = Object.freeze([
  // scripts/build-llama-server.sh: the cached CPU llama-server from node-llama-cpp's llama.cpp source.
  { command: 'git', package: 'git', for: ['demo', 'test'] },
  { command: 'cmake', package: 'cmake', for: ['demo', 'test'] },
  { command: 'ninja', package: 'ninja-build', for: ['demo', 'test'] },
  { command: 'g++', package: 'g++', for: ['demo', 'test'] },
  // The PID 1 and boot tests: a real OpenSSH server, namespaces, a pseudo-terminal.
  { command: 'sshd', package: 'openssh-server', for: ['test'] },
  { command: 'ssh', package: 'openssh-client', for: ['test'] },
  { command: 'ssh-keygen', package: 'openssh-client', for: ['test'] },
  { command: 'unshare', package: 'util-linux', for: ['test'] },
  { command: 'nsenter', package: 'util-linux', for: ['test'] },
  { command: 'setsid', package: 'util-linux', for: ['test'] },
  { command: 'script', package: 'bsdutils', for: ['test'] },
  { command: 'ip', package: 'iproute2', for: ['test'] },
  // The image tests (test/images/): podman with runc (crun 1.8 cannot run on a cgroup v1 hybrid host),
  // mmdebstrap for the local Debian 12 base image, shellcheck for the images' shell scripts.
  { command: 'podman', package: 'podman', for: ['test'] },
  { command: 'runc', package: 'runc', for: ['test'] },
  { command: 'mmdebstrap', package: 'mmdebstrap', for: ['test'] },
  { command: 'shellcheck', package: 'shellcheck', for: ['test'] },
  // The dashboard's browser tests (test/e2e/dashboard.test.ts): Debian's Chromium, driven by
  // playwright-core through its executablePath, so no browser is downloaded.
  { command: 'chromium', package: 'chromium', for: ['test'] },
]);

const PURPOSES = ['demo', 'test'];

/** Where a command is looked for: the given path list, then the sbin dirs a non-root PATH lacks. */
export function searchPath(env = process.env) {
  const given = env.INFER_DEV_TOOLS_PATH ?? `${env.PATH ?? ''}${delimiter}/usr/sbin${delimiter}/sbin`;
  return given.split(delimiter).filter((dir) => dir !== '');
}

/** The full path of an executable `command` on `dirs`, or null. */
export function findCommand(command, dirs) {
  for (const dir of dirs) {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return join(dir, command);
    } catch (err) {
      // Not in this directory (or not executable there): look on.
      if (!['ENOENT', 'EACCES', 'ENOTDIR'].includes(err.code)) throw err;
    }
  }
  return null;
}

/** The tools `purpose` needs that are not there. */
export function findMissing(purpose, dirs) {
  return SYSTEM_TOOLS.filter((tool) => tool.for.includes(purpose) && findCommand(tool.command, dirs) === null);
}

/** The one line that says what is missing and how to get it. */
export function describeMissing(purpose, missing) {
  const packages = [...new Set(missing.map((t) => t.package))];
  const tools = missing.map((t) => `${t.command} (${t.package})`).join(', ');
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  return `the ${purpose === 'test' ? 'tests need' : 'demo needs'} ${tools}, not found on this machine; install with: ${sudo}apt-get install -y ${packages.join(' ')}`;
}

function install(packages, aptGet) {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const run = (args) => spawnSync(aptGet, args, { env, stdio: ['ignore', 'ignore', 'inherit'] }).status === 0;
  // A fresh machine has no package lists yet; update first, as the install needs them.
  return run(['update', '-qq']) && run(['install', '-y', '-qq', '--no-install-recommends', ...packages]);
}

function main(argv) {
  const purpose = argv.find((a) => !a.startsWith('-'));
  if (!PURPOSES.includes(purpose ?? '')) {
    process.stderr.write(`usage: node scripts/system-tools.mjs ${PURPOSES.join('|')} [--check]\n`);
    return 2;
  }
  const dirs = searchPath();
  let missing = findMissing(purpose, dirs);
  if (missing.length === 0) return 0;
  const aptGet = findCommand('apt-get', dirs);
  if (!argv.includes('--check') && process.getuid?.() === 0 && aptGet !== null) {
    const packages = [...new Set(missing.map((t) => t.package))];
    process.stderr.write(`[system-tools] installing ${packages.join(' ')} (for ${missing.map((t) => t.command).join(', ')}) with apt-get\n`);
    install(packages, aptGet);
    missing = findMissing(purpose, dirs);
    if (missing.length === 0) return 0;
  }
  process.stderr.write(`[system-tools] ${describeMissing(purpose, missing)}\n`);
  return 1;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
