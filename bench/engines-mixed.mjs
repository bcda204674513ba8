// Issue 14: one daemon for all engines costs nothing extra. `supervisor status`
// latency and the daemon's RSS with 8 instances of mixed engines, against 8
// llama-server-only instances, both daemons running side by side in one run.
//
// Method: daemon A supervises 8 real llama-server instances (the tiny model,
// as daemon-footprint); daemon B supervises 8 mixed ones: 2 llama-server, 2
// engine = "command" running the same llama-server, 2 vLLM stand-ins from an
// upstream-shaped vLLM file (AUTO_INFER_VLLM_CONFIG, through the pixi-shaped
// wrapper) and 2 SGLang stand-ins from an SGLang file (test/fixtures/engines;
// Python, no GPU). Once all 16 are ready: 20 `supervisor status` runs against
// each, interleaved (A, B, B, A, ...), with `node -e 0` as the floor; then
// VmRSS of both daemons from /proc after 2 s idle. Without a cached
// llama-server build, the fake server stands in for it and the table says so.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fakeInstance, fakeMaster, findLlamaServer, fmt, freePorts, makeTempDir, median, percentile, REPO_ROOT, sleep, startDaemon, statusKiB, table, writeTinyModel, CLI } from './lib.mjs';

export const name = 'engines-mixed';

const FIXTURES = join(REPO_ROOT, 'test/fixtures/engines');
const STATUS_RATIO_LIMIT = 1.2;
const RSS_DELTA_LIMIT_MIB = 8;

export async function run({ quick }) {
  const runs = 20;
  const warmup = quick ? 2 : 3;
  const ports = await freePorts(16);
  const llama = findLlamaServer();
  const { dir, remove } = makeTempDir('svb-engines');
  try {
    const model = join(dir, 'tiny.gguf');
    let master;
    let llamaBlock;
    let commandOf;
    if (llama.path) {
      writeTinyModel(model);
      master = `[master]\nllama_cpp_path = ${JSON.stringify(llama.path)}\n`;
      llamaBlock = (n, port) => `[instance.${n}.server]\nhost = "127.0.0.1"\nport = ${port}\nmodel = ${JSON.stringify(model)}\nthreads = 1\nctx_size = 512\nalias = "${n}"\n`;
      commandOf = (port) => [llama.path, '--host', '127.0.0.1', '--port', String(port), '--model', model, '--threads', '1', '--ctx-size', '512'];
    } else {
      master = fakeMaster();
      llamaBlock = (n, port) => fakeInstance(n, port, ['--ready-after-ms', '0']);
      commandOf = (port) => [process.execPath, join(REPO_ROOT, 'test/fixtures/fake-server.mjs'), '--port', String(port), '--ready-after-ms', '0'];
    }
    const kind = llama.path ? 'real llama-server, tiny model' : `FAKE llama-server (${llama.reason})`;
    const only = `${master}[instance.control]\nlog_dir = "@DIR@"\n${ports.slice(0, 8).map((p, i) => llamaBlock(`l${i}`, p)).join('\n')}`;
    const mixedPorts = ports.slice(8);
    const command = (n, port) => `[instance.${n}]\nengine = "command"\ncommand = ${JSON.stringify(commandOf(port))}\nport = ${port}\n`;
    const mixed = `${master}[instance.control]\nlog_dir = "@DIR@"\n${llamaBlock('m0', mixedPorts[0])}\n${llamaBlock('m1', mixedPorts[1])}\n${command('c0', mixedPorts[2])}\n${command('c1', mixedPorts[3])}`;
    const standin = (n, port, modelKey) => `[instance.${n}.control]\nenv = { STANDIN_LOAD_S = "0.2", PYTHONPATH = ${JSON.stringify(join(FIXTURES, 'vllm-project'))} }\n[instance.${n}.server]\nhost = "127.0.0.1"\nport = ${port}\n${modelKey} = "m"\n`;
    const vllmFile = join(dir, 'vllm.toml');
    writeFileSync(vllmFile, `[master]\npixi_project_dir = ${JSON.stringify(join(FIXTURES, 'vllm-project'))}\napi_server_module = "standin.api_server"\n[instance.control]\nlog_dir = ${JSON.stringify(dir)}\n${standin('v0', mixedPorts[4], 'model')}\n${standin('v1', mixedPorts[5], 'model')}`);
    const sglangFile = join(dir, 'sglang.toml');
    writeFileSync(sglangFile, `[master]\npython_path = "python3"\nserver_module = "standin.api_server"\n[instance.control]\nlog_dir = ${JSON.stringify(dir)}\n${standin('s0', mixedPorts[6], 'model_path')}\n${standin('s1', mixedPorts[7], 'model_path')}`);

    const a = await startDaemon(only);
    const b = await startDaemon(mixed, { env: { PATH: `${join(FIXTURES, 'bin')}:${process.env.PATH}`, AUTO_INFER_VLLM_CONFIG: vllmFile, AUTO_INFER_SGLANG_CONFIG: sglangFile } });
    const t0 = performance.now();
    await Promise.all([...[0, 1, 2, 3, 4, 5, 6, 7].map((i) => a.waitTransition(`l${i}`, 'ready', 120_000)), ...['m0', 'm1', 'c0', 'c1', 'v0', 'v1', 's0', 's1'].map((n) => b.waitTransition(n, 'ready', 120_000))]);
    const readyS = (performance.now() - t0) / 1000;

    const timeIt = (args, env) => {
      const s = performance.now();
      const r = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
      const ms = performance.now() - s;
      if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
      return { ms, stdout: r.stdout };
    };
    for (let i = 0; i < warmup; i++) {
      timeIt(['-e', '0'], process.env);
      timeIt([CLI, 'status'], a.env);
      const out = timeIt([CLI, 'status'], b.env).stdout;
      if (!/\bv0\b/.test(out) || (out.match(/\bready\b/g) ?? []).length < 8) throw new Error(`unexpected status output:\n${out}`);
    }
    const times = { a: [], b: [], node: [] };
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? ['a', 'b', 'node'] : ['node', 'b', 'a'];
      for (const which of order) times[which].push(which === 'node' ? timeIt(['-e', '0'], process.env).ms : timeIt([CLI, 'status'], (which === 'a' ? a : b).env).ms);
    }
    await sleep(2000);
    const rss = { a: statusKiB(a.pid, 'VmRSS') / 1024, b: statusKiB(b.pid, 'VmRSS') / 1024 };
    const ratio = median(times.b) / median(times.a);
    const delta = rss.b - rss.a;
    const row = (label, v, mib) => [label, fmt(median(v)), fmt(Math.min(...v)), fmt(percentile(v, 90)), mib === null ? '-' : fmt(mib)];
    const md = table(['daemon (20 status runs each, interleaved)', 'status median ms', 'min ms', 'p90 ms', 'daemon VmRSS MiB'], [
      row(`A: 8 llama-server (${kind})`, times.a, rss.a),
      row('B: 2 llama-server + 2 command (llama-server) + 2 vLLM stand-in + 2 SGLang stand-in', times.b, rss.b),
      row('`node -e 0` (floor)', times.node, null),
    ]);
    return {
      markdown: `### engines-mixed\n\n${md}\n\nall 16 ready after ${fmt(readyS, 1)} s; status B/A ratio of medians ${fmt(ratio, 2)} (target <= ${STATUS_RATIO_LIMIT}); RSS B - A ${fmt(delta)} MiB (target <= ${RSS_DELTA_LIMIT_MIB})`,
      summary: [
        { benchmark: 'status, 8 mixed engines vs 8 llama-server', measured: `${fmt(median(times.b))} ms`, reference: `${fmt(median(times.a))} ms`, ratioOrLimit: `${fmt(ratio, 2)}x`, target: `<= ${STATUS_RATIO_LIMIT}x`, pass: ratio <= STATUS_RATIO_LIMIT },
        { benchmark: 'daemon RSS, 8 mixed engines vs 8 llama-server', measured: `${fmt(rss.b)} MiB`, reference: `${fmt(rss.a)} MiB`, ratioOrLimit: `${delta >= 0 ? '+' : ''}${fmt(delta)} MiB`, target: `<= +${RSS_DELTA_LIMIT_MIB} MiB`, pass: delta <= RSS_DELTA_LIMIT_MIB },
      ],
      data: { runs, times, rss, ratio, readyS, kind },
    };
  } finally {
    await remove();
  }
}
