// deploy/helm/infer-dev rendered (tools/helm-subset) with its defaults and with
// the values people change, each manifest validated against Kubernetes' schemas
// (support/manifests.ts); the probes run our built CLI, as the image does.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderChart } from '../../tools/helm-subset/render.ts';
import { CLI, REPO_ROOT } from '../support/daemon.ts';
import { probeCommands, validateManifest, validatePodTemplateStrictly, type Manifest } from './support/manifests.ts';

const CHART = join(REPO_ROOT, 'deploy/helm/infer-dev');
const dir = mkdtempSync(join(tmpdir(), 'chart-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const render = (values: Record<string, unknown> = {}) => renderChart(CHART, { values, release: { name: 'box' } }).flatMap((f) => f.documents as Manifest[]);
const find = (docs: Manifest[], kind: string, suffix = '') => docs.find((d) => d.kind === kind && String(d.metadata.name).endsWith(suffix));
const deployment = (docs: Manifest[]) => find(docs, 'Deployment')!;
const container = (docs: Manifest[]) => deployment(docs).spec.template.spec.containers[0];
const env = (docs: Manifest[]) => Object.fromEntries(container(docs).env.map((e: Manifest) => [e.name, e.value ?? e.valueFrom]));

const VARIANTS: Record<string, Record<string, unknown>> = {
  defaults: {},
  'cpu, no ssh, existing claims, api key, resources': {
    gpus: 0,
    ssh: { enabled: false },
    persistence: { models: { existingClaim: 'models', readOnly: false }, workspace: { existingClaim: 'ws', storageClass: 'fast' } },
    gateway: { port: 12000, service: { type: 'LoadBalancer', port: 80 }, apiKeySecret: { name: 'gw', key: 'token' } },
    resources: { requests: { cpu: '8', memory: '64Gi' }, limits: { memory: '96Gi' } },
    runtimeClassName: 'nvidia',
    nodeSelector: { 'nvidia.com/gpu.product': 'H200' },
    tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    podAnnotations: { a: 'b' },
    extraEnv: [{ name: 'SUPERVISOR_LOG_LEVEL', value: 'debug' }],
    terminationGracePeriodSeconds: 300,
  },
  '8 GPUs, ssh from an existing Secret, storage classes': {
    gpus: 8,
    resources: { limits: { cpu: '32' } },
    ssh: { existingSecret: 'keys', service: { type: 'NodePort' } },
    persistence: { models: { storageClass: 'nfs', accessModes: ['ReadOnlyMany'] } },
    imagePullSecrets: [{ name: 'reg' }],
  },
};

describe('the chart renders valid manifests', () => {
  for (const [name, values] of Object.entries(VARIANTS)) {
    it(`${name}: every manifest passes the Kubernetes schemas (pod template strictly)`, () => {
      const docs = render(values);
      expect(docs.map(validateManifest).sort()).toEqual(expect.arrayContaining(['apps/v1/Deployment', 'v1/ConfigMap', 'v1/Service']));
    });
  }

  it('defaults: one GPU, both PVCs, /dev/shm in memory, config and SSH keys mounted, gateway and SSH Services', () => {
    const docs = render({ ssh: { authorizedKeys: 'ssh-ed25519 AAAA me@laptop' } });
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort()).toEqual([
      'ConfigMap/box-infer-dev-config',
      'Deployment/box-infer-dev',
      'PersistentVolumeClaim/box-infer-dev-models',
      'PersistentVolumeClaim/box-infer-dev-workspace',
      'Secret/box-infer-dev-ssh',
      'Service/box-infer-dev-gateway',
      'Service/box-infer-dev-ssh',
    ]);
    const d = deployment(docs);
    expect(d.spec).toMatchObject({ replicas: 1, strategy: { type: 'Recreate' } });
    expect(container(docs).resources).toEqual({ limits: { 'nvidia.com/gpu': 1 } });
    const volumes = Object.fromEntries(d.spec.template.spec.volumes.map((v: Manifest) => [v.name, v]));
    expect(volumes.shm.emptyDir).toEqual({ medium: 'Memory', sizeLimit: '16Gi' });
    expect(volumes.models.persistentVolumeClaim.claimName).toBe('box-infer-dev-models');
    expect(volumes.workspace.persistentVolumeClaim.claimName).toBe('box-infer-dev-workspace');
    const mounts = Object.fromEntries(container(docs).volumeMounts.map((m: Manifest) => [m.name, m.mountPath]));
    expect(mounts).toEqual({ config: '/etc/infer-dev/config', models: '/llm-models', workspace: '/hard/volume/workspace', shm: '/dev/shm' });
    expect(find(docs, 'Secret')!.stringData).toEqual({ authorized_keys: 'ssh-ed25519 AAAA me@laptop' });
    expect(env(docs)).toMatchObject({
      AUTO_INFER_LLAMA_CPP_CONFIG: '/etc/infer-dev/config/infer-dev.toml',
      AUTO_INFER_LLAMA_CPP_ON_BOOT: '1',
      SSH_AUTHORIZED_KEYS: { secretKeyRef: { name: 'box-infer-dev-ssh', key: 'authorized_keys' } },
    });
    // The image's ENTRYPOINT stays PID 1.
    expect(container(docs).command).toBeUndefined();
    expect(container(docs).args).toBeUndefined();
  });

  it('Services reach the container by its port names and select the pod', () => {
    for (const values of Object.values(VARIANTS)) {
      const docs = render(values);
      const pod = deployment(docs).spec.template;
      const portNames = new Set(container(docs).ports.map((p: Manifest) => p.name));
      for (const svc of docs.filter((x) => x.kind === 'Service')) {
        for (const port of svc.spec.ports) expect(portNames.has(port.targetPort), `${svc.metadata.name} → ${port.targetPort}`).toBe(true);
        expect(pod.metadata.labels).toMatchObject(svc.spec.selector);
      }
      expect(deployment(docs).spec.selector.matchLabels).toEqual(pod.metadata.labels);
    }
  });

  it('variants: no GPU, no SSH (sshd off), existing claims, the gateway port everywhere', () => {
    const docs = render(VARIANTS['cpu, no ssh, existing claims, api key, resources']);
    expect(docs.filter((d) => d.kind === 'PersistentVolumeClaim' || d.kind === 'Secret')).toEqual([]);
    expect(find(docs, 'Service', '-ssh')).toBeUndefined();
    expect(container(docs).resources).toEqual({ limits: { memory: '96Gi' }, requests: { cpu: '8', memory: '64Gi' } });
    expect(env(docs)).toMatchObject({
      SUPERVISOR_SSHD: '0',
      SUPERVISOR_GATEWAY_API_KEY: { secretKeyRef: { name: 'gw', key: 'token' } },
      SUPERVISOR_LOG_LEVEL: 'debug',
      AUTO_INFER_LLAMA_CPP_OVERRIDES: '{"gateway":{"enable":true,"host":"0.0.0.0","port":12000}}',
    });
    expect(container(docs).ports).toEqual([{ name: 'gateway', containerPort: 12000, protocol: 'TCP' }]);
    const claims = deployment(docs).spec.template.spec.volumes.filter((v: Manifest) => v.persistentVolumeClaim).map((v: Manifest) => v.persistentVolumeClaim.claimName);
    expect(claims).toEqual(['models', 'ws']);
    const eight = render(VARIANTS['8 GPUs, ssh from an existing Secret, storage classes']);
    expect(container(eight).resources.limits).toEqual({ 'nvidia.com/gpu': 8, cpu: '32' });
    expect(env(eight).SSH_AUTHORIZED_KEYS).toEqual({ secretKeyRef: { name: 'keys', key: 'authorized_keys' } });
    expect(find(eight, 'PersistentVolumeClaim', '-models')!.spec).toMatchObject({ storageClassName: 'nfs', accessModes: ['ReadOnlyMany'] });
  });

  it('the strict check catches what the schemas alone let through (an unknown field in the pod)', () => {
    const template = structuredClone(deployment(render()).spec.template);
    template.spec.containers[0].readinesProbe = template.spec.containers[0].readinessProbe;
    expect(() => validatePodTemplateStrictly(template, 'typo')).toThrow(/must NOT have additional properties \(readinesProbe\)/);
    const wrongType = structuredClone(deployment(render()));
    wrongType.spec.template.spec.containers[0].ports[0].containerPort = 'gateway';
    expect(() => validateManifest(wrongType)).toThrow(/containerPort must be integer/);
  });
});

describe('probes and shutdown', () => {
  it('startup sized for big loads, readiness on the gateway, liveness only on the supervisor', () => {
    const c = container(render());
    expect(c.startupProbe).toEqual({ exec: { command: ['supervisor', 'health', '--ready'] }, periodSeconds: 30, failureThreshold: 240, timeoutSeconds: 10 });
    expect(c.readinessProbe.exec.command).toEqual(['supervisor', 'health', '--ready']);
    expect(c.livenessProbe.exec.command).toEqual(['supervisor', 'health', '--live']);
    // The CLI waits 5 s for the daemon: every probe's timeout leaves it that.
    for (const probe of [c.startupProbe, c.readinessProbe, c.livenessProbe]) expect(probe.timeoutSeconds).toBeGreaterThan(5);
  });

  it('the probes call commands the image has: supervisor on PATH is dist/cli.js, and each flag is known to it', () => {
    const setup = readFileSync(join(REPO_ROOT, 'docker/stage-2/setup-image.sh'), 'utf8');
    expect(setup).toMatch(/^ln -sf \/opt\/infer-dev\/dist\/cli\.js \/usr\/local\/bin\/supervisor$/m);
    const commands = probeCommands(deployment(render()).spec.template.spec);
    expect(commands).toHaveLength(3);
    for (const { where, command } of commands) {
      expect(command[0], where).toBe('supervisor');
      // No daemon here: a known command and flag answers 1 (unhealthy / not ready); a usage error would be 2.
      const r = spawnSync(process.execPath, [CLI, ...command.slice(1)], { env: { ...process.env, SUPERVISOR_SOCKET: join(dir, 'none.sock') }, encoding: 'utf8' });
      expect({ where, code: r.status, stderr: r.stderr }).toEqual({ where, code: 1, stderr: '' });
      expect(r.stdout).toMatch(/^(unhealthy|not ready): supervisor daemon is not running/);
    }
  });

  it('the grace period covers the stop budget; a shorter one given by hand fails the render', () => {
    const docs = render({ stopBudgetS: 120 });
    expect(env(docs).SUPERVISOR_STOP_BUDGET_S).toBe('120');
    expect(deployment(docs).spec.template.spec.terminationGracePeriodSeconds).toBe(130);
    expect(deployment(render({ terminationGracePeriodSeconds: 600 })).spec.template.spec.terminationGracePeriodSeconds).toBe(600);
    expect(() => render({ stopBudgetS: 60, terminationGracePeriodSeconds: 30 })).toThrow(/terminationGracePeriodSeconds \(30\) must be at least stopBudgetS \+ 5 \(65\)/);
  });

  it("the ConfigMap's TOML passes supervisor config check with the container's overrides", () => {
    const docs = render();
    const file = join(dir, 'infer-dev.toml');
    writeFileSync(file, find(docs, 'ConfigMap')!.data['infer-dev.toml']);
    const r = spawnSync(process.execPath, [CLI, 'config', 'check', file, '--json'], { env: { ...process.env, AUTO_INFER_LLAMA_CPP_OVERRIDES: env(docs).AUTO_INFER_LLAMA_CPP_OVERRIDES }, encoding: 'utf8' });
    const report = JSON.parse(r.stdout);
    expect(report.issues.filter((i: Manifest) => i.severity === 'error')).toEqual([]);
    expect(r.status).toBe(0);
  });

  it('a missing config is a render error naming the value', () => {
    expect(() => render({ config: '' })).toThrow(/values\.config: the supervisor's TOML is required/);
  });
});
