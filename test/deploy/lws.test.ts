// deploy/lws/infer-dev-rpc.yaml: every manifest against its schema (the
// LeaderWorkerSet against LWS's vendored CRD), the leader's entry script run by
// a real sh with LWS's environment, and the configs through config check
// (with issue 15's rpc-worker keys) with no error.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT } from '../support/daemon.ts';
import { requireTools } from '../support/system-tools.ts';
import { probeCommands, validateManifest, type Manifest } from './support/manifests.ts';

const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'deploy/lws/infer-dev-rpc.yaml'), 'utf8')).map((d) => d.toJS() as Manifest);
const byKind = (kind: string) => docs.find((d) => d.kind === kind)!;
const files = byKind('ConfigMap').data as Record<string, string>;
const lws = byKind('LeaderWorkerSet');
const leader = lws.spec.leaderWorkerTemplate.leaderTemplate;
const worker = lws.spec.leaderWorkerTemplate.workerTemplate;
const envOf = (pod: Manifest) => Object.fromEntries(pod.spec.containers[0].env.map((e: Manifest) => [e.name, e.value]));

const dir = mkdtempSync(join(tmpdir(), 'lws-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The entry script under sh, with a `supervisor` on PATH that prints what it got.
function runEntry(env: Record<string, string>) {
  writeFileSync(join(dir, 'leader-entry.sh'), files['leader-entry.sh']);
  writeFileSync(join(dir, 'supervisor'), '#!/bin/sh\necho "argv: $*"\necho "overrides: $AUTO_INFER_LLAMA_CPP_OVERRIDES"\n');
  chmodSync(join(dir, 'supervisor'), 0o755);
  const r = spawnSync('sh', [join(dir, 'leader-entry.sh')], { env: { PATH: `${dir}:/usr/bin:/bin`, ...env }, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the LeaderWorkerSet example', () => {
  it('every manifest passes its schema; the LeaderWorkerSet and both pod templates strictly', () => {
    expect(docs.map(validateManifest)).toEqual(['v1/ConfigMap', 'leaderworkerset.x-k8s.io/v1/LeaderWorkerSet', 'networking.k8s.io/v1/NetworkPolicy', 'v1/Service']);
  });

  it('the CRD check refuses what LWS would refuse', () => {
    const bad = structuredClone(lws);
    bad.spec.leaderWorkerTemplate.restartPolicy = 'Sometimes';
    expect(() => validateManifest(bad)).toThrow(/restartPolicy must be equal to one of the allowed values/);
    const typo = structuredClone(lws);
    typo.spec.leaderWorkerTemplate.workerTemplate.spec.containers[0].livenesProbe = {};
    expect(() => validateManifest(typo)).toThrow(/additional properties \(livenesProbe\)/);
  });

  it('leader-entry.sh lists worker 1..size-1 of the group as rpc, then execs supervisor boot', () => {
    const r = runEntry({ LWS_LEADER_ADDRESS: 'infer-dev-rpc-0.infer-dev-rpc.default', LWS_GROUP_SIZE: '3', RPC_PORT: '50052' });
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const overrides = JSON.parse(/^overrides: (.*)$/m.exec(r.stdout)![1]);
    expect(overrides).toEqual({ instance: { llm: { rpc: ['infer-dev-rpc-0-1.infer-dev-rpc.default:50052', 'infer-dev-rpc-0-2.infer-dev-rpc.default:50052'] } } });
    expect(r.stdout).toMatch(/^argv: boot --$/m);
  });

  it('leader-entry.sh passes shellcheck (POSIX sh)', () => {
    const { shellcheck } = requireTools(['shellcheck'], 'the shell script check');
    writeFileSync(join(dir, 'entry-check.sh'), files['leader-entry.sh']);
    const run = spawnSync(shellcheck, ['-s', 'sh', join(dir, 'entry-check.sh')], { encoding: 'utf8' });
    expect(run.stdout + run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  it('leader-entry.sh refuses what would give a wrong rpc list, naming the variable', () => {
    const ok = { LWS_LEADER_ADDRESS: 'a-0.a.ns', LWS_GROUP_SIZE: '2' };
    expect(runEntry({ LWS_GROUP_SIZE: '2' })).toMatchObject({ code: 2, stderr: expect.stringMatching(/LWS_LEADER_ADDRESS is unset/) });
    expect(runEntry({ ...ok, LWS_GROUP_SIZE: '1' })).toMatchObject({ code: 2, stderr: expect.stringMatching(/LWS_GROUP_SIZE=1: a group needs at least one worker/) });
    expect(runEntry({ ...ok, LWS_GROUP_SIZE: 'x' })).toMatchObject({ code: 2, stderr: expect.stringMatching(/LWS_GROUP_SIZE=x is not a number/) });
    expect(runEntry({ ...ok, LWS_LEADER_ADDRESS: 'nodots' })).toMatchObject({ code: 2, stderr: expect.stringMatching(/is not NAME\.DOMAIN/) });
    expect(runEntry({ ...ok, AUTO_INFER_LLAMA_CPP_OVERRIDES: '{}' })).toMatchObject({ code: 2, stderr: expect.stringMatching(/put it in leader\.toml instead/) });
  });

  it('ports agree: the worker config, its container port, the NetworkPolicy and the leader-entry default', () => {
    const workerToml = parseToml(files['worker.toml']) as any;
    expect(workerToml.instance.rpc).toMatchObject({ engine: 'rpc-worker', port: 50052, allow_network: true });
    expect(worker.spec.containers[0].ports).toEqual([{ name: 'rpc', containerPort: 50052 }]);
    expect(byKind('NetworkPolicy').spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: 50052 }]);
    expect(envOf(leader).RPC_PORT).toBe('50052');
    const leaderToml = parseToml(files['leader.toml']) as any;
    expect(leaderToml.gateway.port).toBe(leader.spec.containers[0].ports[0].containerPort);
    expect(byKind('Service').spec.selector).toEqual(leader.metadata.labels);
  });

  it('the probes call our CLI with flags it knows (no daemon: 1, or 3 under --strict; never 2)', () => {
    const commands = [...probeCommands(leader.spec), ...probeCommands(worker.spec)];
    expect(commands.map((c) => c.command.join(' '))).toEqual([
      'supervisor health --ready',
      'supervisor health --ready',
      'supervisor health --live',
      'supervisor health --strict',
      'supervisor health --live',
    ]);
    for (const { where, command } of commands) {
      const r = spawnSync(process.execPath, [CLI, ...command.slice(1)], { env: { ...process.env, SUPERVISOR_SOCKET: join(dir, 'none.sock') }, encoding: 'utf8' });
      expect({ where, code: r.status }).toEqual({ where, code: command.includes('--strict') ? 3 : 1 });
    }
  });

  // The configs use issue 15's rpc-worker half (engine = "rpc-worker", allow_network, rpc): no errors, and no
  // insecure-network warning (the worker acknowledges it with allow_network = true).
  for (const name of ['worker.toml', 'leader.toml']) {
    it(`${name}: config check finds no error`, () => {
      const file = join(dir, name);
      writeFileSync(file, files[name]);
      const overrides = name === 'leader.toml' ? '{"instance":{"llm":{"rpc":["w-1.x:50052"]}}}' : '';
      const r = spawnSync(process.execPath, [CLI, 'config', 'check', file, '--json'], { env: { ...process.env, AUTO_INFER_LLAMA_CPP_OVERRIDES: overrides }, encoding: 'utf8' });
      const issues = JSON.parse(r.stdout).issues as Manifest[];
      expect(issues.filter((i) => i.severity === 'error'), JSON.stringify(issues)).toEqual([]);
      expect(issues.filter((i) => /not loopback/.test(i.message))).toEqual([]);
      expect(r.status).toBe(0);
    });
  }
});
