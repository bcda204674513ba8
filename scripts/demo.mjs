// `npm run demo`: the supervisor on config-examples/demo.toml with two real
// llama-server instances serving the generated tiny model. Ctrl-C stops all.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const binDir = execFileSync('bash', ['scripts/build-llama-server.sh'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
mkdirSync('.demo/logs', { recursive: true });
// The control socket lives in .demo/: only we may write there (the daemon refuses a group-writable directory).
chmodSync('.demo', 0o700);
execFileSync(process.execPath, ['dist/tiny-model.js', '.demo/tiny.gguf'], { stdio: 'inherit' });

const socket = `${process.cwd()}/.demo/supervisor.sock`;
const env = {
  ...process.env,
  SUPERVISOR_SOCKET: socket,
  // The cached llama-server build; the config file itself names no machine path.
  AUTO_INFER_LLAMA_CPP_OVERRIDES: JSON.stringify({ master: { llama_cpp_path: `${binDir}/llama-server` } }),
};
const daemon = spawn(process.execPath, ['dist/cli.js', 'run', '--config', 'config-examples/demo.toml'], { env, stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => daemon.kill(signal));
daemon.on('exit', (code) => process.exit(code ?? 1));

// Once both instances answer, say what to try.
for (let i = 0; i < 600; i++) {
  await sleep(100);
  const health = spawn(process.execPath, ['dist/cli.js', 'health'], { env, stdio: 'ignore' });
  const code = await new Promise((resolve) => health.on('exit', resolve));
  if (code === 0) break;
}
const cli = `SUPERVISOR_SOCKET=${socket} node dist/cli.js`;
process.stdout.write(`
──────────────────────────────────────────────────────────────────────
 Two llama-server instances are up (tiny-a on :18080, tiny-b on :18081).

   curl -s http://127.0.0.1:18080/v1/chat/completions \\
     -H 'content-type: application/json' \\
     -d '{"messages":[{"role":"user","content":"Hello"}],"max_tokens":16}'

   # the gateway: one port, routed by model (alias)
   curl -s http://127.0.0.1:11899/v1/models
   curl -s http://127.0.0.1:11899/v1/messages -H 'content-type: application/json' \\
     -d '{"model":"tiny-b","max_tokens":16,"messages":[{"role":"user","content":"Hello"}]}'

   ${cli} status
   ${cli} logs tiny-b -n 20
   kill -9 $(${cli} status --json | node -pe 'JSON.parse(require("fs").readFileSync(0))[0].pid')
   ${cli} status        # tiny-a restarted, restarts = 1

 Ctrl-C stops everything.
──────────────────────────────────────────────────────────────────────
`);
