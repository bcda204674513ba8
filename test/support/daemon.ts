// Runs the built supervisor (dist/cli.js) as tests do it: a daemon on a
// private socket with a temp config, and CLI calls against it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { INSTANCE_MARKER_ENV, SUPERVISOR_MARKER_ENV } from '../../src/config/instance-plan.ts';
import { findProcessesWithEnv } from '../../src/process/marked.ts';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(REPO_ROOT, 'dist/cli.js');
export const FAKE_SERVER = join(REPO_ROOT, 'test/fixtures/fake-server.mjs');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface DaemonHandle {
  dir: string;
  socket: string;
  config: string;
  process: ChildProcess;
  /** Parsed pino lines printed so far. */
  events: Record<string, unknown>[];
  cli(...args: string[]): CliResult;
  cliAsync(...args: string[]): Promise<CliResult>;
  writeConfig(text: string): void;
  waitFor(check: () => boolean | Promise<boolean>, timeoutMs?: number, what?: string | (() => string)): Promise<void>;
  waitForState(name: string, state: string, timeoutMs?: number): Promise<Record<string, any>>;
  status(): Record<string, any>[];
  /** Live processes of an instance started by this daemon (its markers), wherever they moved to. */
  processesOf(instance: string): Promise<number[]>;
  /** SIGTERM and wait; resolves with the exit code and the time it took. */
  stop(): Promise<{ code: number | null; ms: number }>;
}

/** A temp dir whose name is short enough for a Unix socket path. */
export function makeTempDir(prefix = 'sv'): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

/** Starts `supervisor run --config` on a temp socket and waits until it answers; `@DIR@` in the config is the temp dir. */
export async function startDaemon(
  configText: string,
  env: Record<string, string> = {},
  { withConfig = true }: { withConfig?: boolean } = {},
): Promise<DaemonHandle> {
  const dir = makeTempDir();
  const socket = join(dir, 'sv.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, configText.replaceAll('@DIR@', dir));
  const childEnv = { ...process.env, SUPERVISOR_SOCKET: socket, ...env };
  // withConfig false: a daemon with nothing served yet (what boot has before auto-serve or `supervisor serve`).
  const runArgs = withConfig ? ['run', '--config', config] : ['run'];
  const proc = spawn(process.execPath, [CLI, ...runArgs], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, unknown>[] = [];
  let buffered = '';
  proc.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      try {
        events.push(JSON.parse(line));
      } catch {
        events.push({ raw: line });
      }
    }
  });
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

  const cli = (...args: string[]): CliResult => {
    const r = spawnSync(process.execPath, [CLI, ...args], { env: childEnv, encoding: 'utf8', timeout: 120_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const cliAsync = (...args: string[]): Promise<CliResult> =>
    new Promise((resolve) => {
      const c = spawn(process.execPath, [CLI, ...args], { env: childEnv });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d));
      c.stderr.on('data', (d: Buffer) => (err += d));
      c.on('close', (code) => resolve({ code: code ?? -1, stdout: out, stderr: err }));
    });
  // `what` may be a function so that the message shows the last value seen, not the first.
  const waitFor = async (check: () => boolean | Promise<boolean>, timeoutMs = 20_000, what: string | (() => string) = 'condition') => {
    const describe = () => (typeof what === 'function' ? what() : what);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`daemon exited (${proc.exitCode}) while waiting for ${describe()}; stderr: ${stderr}`);
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
  };
  const status = () => {
    const r = cli('status', '--json');
    if (r.code !== 0) throw new Error(`status failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, any>[];
  };
  const handle: DaemonHandle = {
    dir,
    socket,
    config,
    process: proc,
    events,
    cli,
    cliAsync,
    writeConfig: (text) => writeFileSync(config, text.replaceAll('@DIR@', dir)),
    waitFor,
    async waitForState(name, state, timeoutMs = 20_000) {
      let row: Record<string, any> | undefined;
      await waitFor(() => {
        row = status().find((s) => s.name === name);
        return row?.state === state;
      }, timeoutMs, () => `${name} to be ${state} (last: ${JSON.stringify(row)})`);
      return row!;
    },
    status,
    // Both markers: another daemon on this machine may run instances of the same names.
    processesOf: (instance) => findProcessesWithEnv({ [INSTANCE_MARKER_ENV]: instance, [SUPERVISOR_MARKER_ENV]: String(proc.pid) }),
    async stop() {
      const started = Date.now();
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const code = await exited;
      const ms = Date.now() - started;
      rmSync(dir, { recursive: true, force: true });
      return { code, ms };
    },
  };
  await waitFor(() => cli('status', '--json').code === 0, 20_000, 'the control socket');
  return handle;
}

/** A TOML instance block running the fake server on a port with extra flags. */
export function fakeInstance(name: string, port: number, flags: string[] = [], control = ''): string {
  const args = [FAKE_SERVER, ...flags].map((a) => JSON.stringify(a)).join(', ');
  return `[instance.${name}.control]\n${control}\n[instance.${name}.server]\nextra_args = [${args}]\nport = ${port}\n`;
}

/** The [master] block that makes node the "llama-server" executable. */
export function fakeMaster(): string {
  return `[master]\nllama_cpp_path = ${JSON.stringify(process.execPath)}\n`;
}
