#!/usr/bin/env node
// The GPU proof on one H200 (issue 18), with the real supervisor, the real
// installed bundle and a 7B-shaped model that two instances cannot both hold at
// full context. Prints a table and writes what it saw to OUT_DIR.
//   node bench/gpu/proof.mjs SOFT_APP BIG_MODEL TINY_MODEL REAL_SERVER OUT_DIR
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [softApp, big, tiny, realServer, out] = process.argv.slice(2);
const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;
const work = '/tmp/gpu-proof';
mkdirSync(`${work}/logs`, { recursive: true, mode: 0o700 });
mkdirSync(out, { recursive: true });
const socket = `${work}/sv.sock`;
const env = { ...process.env, SUPERVISOR_SOCKET: socket };
const rows = [];
// Daemons still running when something throws are stopped, so the machine is left clean.
const running = new Set();
process.on('exit', () => { for (const d of running) d.kill('SIGKILL'); });
process.on('uncaughtException', (err) => { process.stderr.write(`proof failed: ${err.stack}\n`); for (const d of running) d.kill('SIGTERM'); process.exit(1); });
process.on('unhandledRejection', (err) => { throw err; });
const t0 = Date.now();
const note = (text) => process.stdout.write(`[proof +${((Date.now() - t0) / 1000).toFixed(1)}s] ${text}\n`);
const cli = (...args) => execFileSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
const status = () => JSON.parse(cli('status', '--json'));
const row = (name) => status().find((r) => r.name === name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const save = (name, text) => writeFileSync(join(out, name), typeof text === 'string' ? text : JSON.stringify(text, null, 2));

async function until(what, check, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// The daemon, its event lines kept for the timings.
function startDaemon(config) {
  const events = [];
  const daemon = spawn(process.execPath, [CLI, 'run', '--config', config], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  daemon.stderr.on('data', (chunk) => process.stderr.write(chunk));
  running.add(daemon);
  daemon.once('exit', () => running.delete(daemon));
  let buffered = '';
  daemon.stdout.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) {
      try {
        events.push({ ...JSON.parse(line), seen: Date.now() });
      } catch {
        events.push({ raw: line });
      }
    }
  });
  return { daemon, events, stop: () => new Promise((resolve) => { daemon.once('exit', resolve); daemon.kill('SIGTERM'); }) };
}
const transitionAt = (events, instance, to, after = 0) => events.find((e) => e.event === 'transition' && e.instance === instance && e.to === to && Date.parse(e.time) >= after);

const header = (extra = '') => `[master]\nllama_cpp_path = "${softApp}/llama-cpp/bin/llama-server"\n[instance.control]\nlog_dir = "${work}/logs"\nbackoff_initial_ms = 200\n${extra}[instance.server]\nhost = "127.0.0.1"\n`;
const bigInstance = (name, port, control = '') => `[instance.${name}.control]\ngpu_ids = "0"\n${control}[instance.${name}.server]\nmodel = "${big}"\nport = ${port}\n`;

// The reference, on the empty GPU: the tiny load started directly, /health polled every 5 ms.
let directTinyMs = null;
// The reference: the same tiny load started directly, /health polled every 5 ms.
{
  const started = Date.now();
  const direct = spawn(realServer, ['-m', tiny, '--port', '18299', '-ngl', '99'], { stdio: ['ignore', 'ignore', openSync(`${work}/logs/direct.log`, 'w')] });
  // fetch, not curl: the GPU machine has no curl.
  for (;;) {
    const ok = await fetch('http://127.0.0.1:18299/health').then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() - started > 60_000) throw new Error('the direct tiny server did not answer within 60 s');
    await sleep(5);
  }
  const directMs = Date.now() - started;
  direct.kill('SIGKILL');
  directTinyMs = directMs;
}


// ---- 1. Two big instances on GPU 0, and a tiny one on the CPU ----
const configA = `${work}/a.toml`;
const tinyCpu = `[instance.tiny-cpu.control]\ngpu_ids = "none"\n[instance.tiny-cpu.server]\nmodel = "${tiny}"\nport = 18203\n`;
const tinyGpu = `[instance.tiny-gpu.control]\ngpu_ids = "0"\n[instance.tiny-gpu.server]\nmodel = "${tiny}"\nport = 18204\nn_gpu_layers = 99\n`;
writeFileSync(configA, header() + bigInstance('big-a', 18201) + bigInstance('big-b', 18202) + tinyCpu + tinyGpu);
const a = startDaemon(configA);
await until('the daemon', () => { try { return status(); } catch { return null; } });
for (const name of ['big-a', 'big-b', 'tiny-cpu', 'tiny-gpu']) await until(`${name} ready`, () => row(name)?.state === 'ready');
note('all four ready');
const statusA = status();
save('status-two.json', statusA);
save('status-two.txt', cli('status'));
save('gpus-two.json', JSON.parse(cli('gpus', '--json')));
save('nvidia-smi-two.csv', execFileSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' }));
save('nvidia-smi-two-gpu.csv', execFileSync('nvidia-smi', ['--query-gpu=index,memory.used,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8' }));
const [bigA, bigB, cpu] = ['big-a', 'big-b', 'tiny-cpu'].map((n) => statusA.find((r) => r.name === n));
// The CLI calls block this loop: wait for the daemon's event lines to be read before using them.
const eventOf = (events, instance, to) => until(`${instance} -> ${to} event`, () => transitionAt(events, instance, to), 10_000);
const spawnToReady = async (name) => Date.parse((await eventOf(a.events, name, 'ready')).time) - Date.parse((await eventOf(a.events, name, 'starting')).time);
rows.push(['big-a: context, fit', `${bigA.context?.actual}/${bigA.context?.trained}, ${bigA.fit?.decision}`, 'full context']);
rows.push(['big-b: context, fit', `${bigB.context?.actual}/${bigB.context?.trained}: ${bigB.fit?.message}`, 'reduced, with the reason']);
rows.push(['memory on GPU 0 (a, b)', `${JSON.stringify(bigA.gpu?.memory)} / ${JSON.stringify(bigB.gpu?.memory)}`, 'each on GPU 0, with its source']);
rows.push(['tiny-cpu (gpu_ids none)', `gpu ${JSON.stringify(cpu.gpu)}; table: ${cli('status').includes('none (CPU)') ? 'none (CPU)' : 'missing'}`, 'no GPU memory, CPU']);
rows.push(['spawn -> ready: big-a, big-b (supervisor)', `${await spawnToReady('big-a')} ms, ${await spawnToReady('big-b')} ms`, '']);
rows.push(['spawn -> ready: tiny on the GPU (supervisor)', `${await spawnToReady('tiny-gpu')} ms`, '']);
rows.push(['spawn -> /health 200: the same tiny load, direct (5 ms polls, empty GPU)', `${directTinyMs} ms`, 'reference']);

// ---- 2. kill -9 -> replacement ready, and the barrier's wait when nothing lingers ----
{
  const before = row('big-a');
  const killed = Date.now();
  process.kill(before.pid, 'SIGKILL');
  await until('big-a back', () => { const r = row('big-a'); return r.state === 'ready' && r.pid !== before.pid ? r : null; });
  const back = row('big-a');
  rows.push(['kill -9 big-a -> ready again (backoff 200 ms)', `${Date.now() - killed} ms`, '']);
  rows.push(['  release barrier wait (nothing lingers)', `${back.gpu?.release?.waited_ms ?? 'n/a'} ms`, '<= 20 ms']);
  rows.push(['  big-a context after the restart', `${back.context?.actual}/${back.context?.trained} (${back.fit?.decision})`, 'big-b still holds its share']);
}

// ---- 3. on_fit_reduced = "fail" (only where big-b's fit was reduced: not in a dry run on a CPU) ----
if (bigB.fit?.reduced) {
  cli('stop', 'big-b');
  writeFileSync(configA, header() + bigInstance('big-a', 18201) + bigInstance('big-b', 18202, 'on_fit_reduced = "fail"\n') + tinyCpu + tinyGpu);
  cli('reload');
  cli('start', 'big-b');
  const failed = await until('big-b fatal', () => { const r = row('big-b'); return r.state === 'fatal' ? r : null; });
  rows.push(['big-b with on_fit_reduced = "fail"', `${failed.state}: ${failed.last_exit.reason}`, 'fails with that reason']);
}
save('status-fit-fail.txt', cli('status'));
const shutdownAt = Date.now();
await a.stop();
rows.push(['daemon SIGTERM -> exit, 3 servers', `${Date.now() - shutdownAt} ms`, '']);

// ---- 4. A child that keeps the device: killed with the server, the next start waits for its memory ----
// (PROOF_NO_HOLDER=1 skips it: a dry run on a machine without torch.)
if (process.env.PROOF_NO_HOLDER !== '1') {
  const wrapper = `${work}/holder-wrapper.sh`;
  const holder = `${work}/holder.py`;
  writeFileSync(holder, "import torch, time, sys\nx = torch.empty(int(20e9), dtype=torch.uint8, device='cuda')\nopen(sys.argv[1], 'w').write('held')\ntime.sleep(3600)\n");
  // The server leaves a child with 20 GB on the GPU, in its own session (it escapes the group), then becomes llama-server.
  writeFileSync(wrapper, `#!/bin/sh\nrm -f ${work}/held\nsetsid python3 ${holder} ${work}/held >/dev/null 2>&1 &\nwhile [ ! -f ${work}/held ]; do sleep 0.1; done\nexec "${softApp}/llama-cpp/bin/llama-server" "$@"\n`, { mode: 0o755 });
  const configC = `${work}/c.toml`;
  writeFileSync(configC, `[master]\nllama_cpp_path = "${wrapper}"\n[instance.control]\nlog_dir = "${work}/logs"\nbackoff_initial_ms = 200\n[instance.held.control]\ngpu_ids = "0"\n[instance.held.server]\nmodel = "${big}"\nport = 18205\nhost = "127.0.0.1"\n`);
  const c = startDaemon(configC);
  await until('the daemon', () => { try { return status(); } catch { return null; } });
  const first = await until('held ready', () => { const r = row('held'); return r?.state === 'ready' ? r : null; }, 180_000);
  save('nvidia-smi-held.csv', execFileSync('nvidia-smi', ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'], { encoding: 'utf8' }));
  const killed = Date.now();
  process.kill(first.pid, 'SIGKILL');
  const back = await until('held back', () => { const r = row('held'); return r.state === 'ready' && r.pid !== first.pid ? r : null; }, 180_000);
  const sweep = c.events.find((e) => e.event === 'sweep');
  const released = c.events.find((e) => e.event === 'gpu-released' || e.event === 'gpu-release-timeout');
  rows.push(['kill -9 of a server whose child holds 20 GB', `child swept: ${sweep ? `${sweep.pids.join(',')}, gone ${sweep.gone_after_ms} ms after the exit` : 'no'}; ready again ${Date.now() - killed} ms`, 'the child is killed']);
  rows.push(['  release barrier wait (a child lingered)', `${back.gpu.release?.waited_ms ?? 'n/a'} ms${released ? ` (${released.msg})` : ''}`, 'waits for the release, logs it']);
  rows.push(['  context after the restart', `${back.context.actual}/${back.context.trained} (${back.fit.decision})`, 'full context']);
  save('events-held.json', c.events.filter((e) => e.instance === 'held' || e.event?.startsWith('gpu')));
  await c.stop();
}
save('events-a.json', a.events.filter((e) => e.event === 'transition' || e.event === 'fit' || e.event?.startsWith('gpu')));

const table = ['| what | measured | expected |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
save('proof.md', table);
process.stdout.write(`\n${table}\n`);
