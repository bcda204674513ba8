// Static checks of the container files, no engine needed: docker/compose.yaml
// against the Compose Specification's JSON Schema and against what the issue
// asks of it, the Dockerfiles against our lint rules (each rule shown to fire),
// the shell scripts with shellcheck, the devcontainer, run.sh's command line.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requireTools } from '../support/system-tools.ts';
import { lintDockerfile, RULES } from './support/dockerfile-lint.ts';

const ROOT = join(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// Compose's interpolation (`${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$$`) with an empty environment.
function interpolate(value: unknown): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\$|\$\{(\w+)(?::?-([^}]*))?\}|\$(\w+)/g, (whole, _braced: string, fallback: string | undefined) => {
      if (whole === '$$') return '$';
      return fallback ?? '';
    });
  }
  if (Array.isArray(value)) return value.map(interpolate);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]));
  return value;
}

function loadCompose(text: string): Record<string, any> {
  return interpolate(parseYaml(text, { merge: true })) as Record<string, any>;
}

function composeValidator() {
  const schema = JSON.parse(read('test/images/compose-spec/compose-spec.json'));
  // ajv knows draft-07 by its own id; the schema's https spelling of it is only a label.
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, allErrors: true });
  return ajv.compile(schema);
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`).join('; ');
}

describe('docker/compose.yaml', () => {
  const text = read('docker/compose.yaml');
  const compose = loadCompose(text);
  const validate = composeValidator();

  it('is valid against the Compose Specification schema', () => {
    const ok = validate(compose);
    expect(describeErrors(validate.errors), 'schema errors').toBe('');
    expect(ok).toBe(true);
  });

  it('negative control: the schema rejects a misspelt key and a wrong type', () => {
    const broken = structuredClone(compose);
    broken.services['stage-2'].port = broken.services['stage-2'].ports;
    broken.services['stage-2'].stop_grace_period = [15];
    expect(validate(broken)).toBe(false);
    const errors = describeErrors(validate.errors);
    expect(errors).toContain('(port)');
    expect(errors).toContain('/services/stage-2/stop_grace_period');
  });

  it('has what the issue asks: project, build helper, GPUs, ports, mounts, pass-through variables, stop grace', () => {
    expect(compose.name).toBe('infer-dev');
    const s1 = compose.services['stage-1'];
    const s2 = compose.services['stage-2'];
    expect(s1.profiles).toEqual(['build-helper']);
    expect(s1.build.dockerfile).toBe('Dockerfile.stage1');
    expect(s2.build.dockerfile).toBe('Dockerfile.stage2');
    expect(s2.image).toBe('infer-dev:stage-2');
    for (const service of [s1, s2]) {
      expect(service.deploy.resources.reservations.devices).toEqual([{ driver: 'nvidia', count: 'all', capabilities: ['gpu'] }]);
    }
    expect(s2.ports).toEqual(['2222:22', '11980:8080', '11899:11899']);
    expect(s2.volumes).toEqual(['./.container/workspace:/hard/volume/workspace', '../config-examples:/model-configs:ro']);
    // The model mount is there, commented: one folder, read-only.
    expect(text).toMatch(/^\s*# - \S+:\/llm-models\/[^:/\s]+:ro$/m);
    for (const name of ['AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT', 'AUTO_INFER_LLAMA_CPP_PKG_PATH', 'AUTO_INFER_LLAMA_CPP_ON_BOOT', 'AUTO_INFER_LLAMA_CPP_CONFIG', 'SSH_AUTHORIZED_KEYS']) {
      expect(s2.environment, name).toContain(name);
    }
    // Above the supervisor's stop budget (SUPERVISOR_STOP_BUDGET_S, default 9 s), so the drain finishes before SIGKILL.
    const grace = /^(\d+)s$/.exec(s2.stop_grace_period);
    expect(Number(grace?.[1])).toBeGreaterThan(9);
    expect(s2.command).toBeUndefined();
  });
});

describe('Dockerfiles', () => {
  it.each(['Dockerfile.stage1', 'Dockerfile.stage2'])('%s passes every lint rule', (file) => {
    expect(lintDockerfile(read(file)).map((p) => `${file}:${p.line} ${p.rule} ${p.message}`)).toEqual([]);
  });

  // One bad Dockerfile per rule: each rule must fire (and name the right line), or it proves nothing.
  const bad: Array<[string, string, number]> = [
    ['DF001', 'FROM debian:12\nRUNN true\n', 2],
    ['DF002', 'FROM debian:12\nENTRYPOINT supervisor boot\n', 2],
    ['DF002', 'FROM debian:12\nHEALTHCHECK --interval=5s CMD supervisor health\n', 2],
    ['DF003', 'FROM debian:12\nCMD ["a"]\nCMD ["b"]\n', 3],
    ['DF004', 'FROM debian:12\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n', 2],
    ['DF005', 'FROM debian:12\nRUN apt-get update && \\\n    apt-get install -y --no-install-recommends curl\n', 2],
    ['DF006', 'FROM debian:12\nADD https://example.invalid/x.tgz /x\n', 2],
    ['DF007', 'FROM debian:12\nRUN sudo true\n', 2],
    ['DF008', 'FROM debian:latest\n', 1],
    ['DF008', 'FROM docker.io/library/debian\n', 1],
    ['DF009', 'FROM debian:12\nARG ROOT_PASSWORD=secret\n', 2],
    ['DF009', 'FROM debian:12\nENV A=1 HF_TOKEN=x\n', 2],
    ['DF010', 'FROM debian:12\nRUN ssh-keygen -A\n', 2],
    ['DF010', 'FROM debian:12\nCOPY keys/id_ed25519 /root/.ssh/\n', 2],
    ['DF011', 'FROM debian:12\nRUN curl -fsSL -o /x https://example.invalid/x\n', 2],
    ['DF012', 'FROM debian:12\nRUN curl -fsSL --max-time 60 https://example.invalid/i.sh | sh\n', 2],
    ['DF013', 'FROM debian:12\nWORKDIR build\n', 2],
    ['DF014', 'FROM ${BASE}\n', 1],
  ];
  it.each(bad)('rule %s fires on its bad example', (rule, text, line) => {
    expect(lintDockerfile(text).map((p) => [p.rule, p.line])).toContainEqual([rule, line]);
  });

  it('every rule has a bad example, and the README documents every rule', () => {
    expect(new Set(bad.map(([rule]) => rule))).toEqual(new Set(Object.keys(RULES)));
    const readme = read('docker/README.md');
    for (const rule of Object.keys(RULES)) expect(readme, rule).toContain(`| ${rule} |`);
  });

  it('good forms pass: exec-form HEALTHCHECK with flags, a build stage by name, a bounded curl, a stage-ARG FROM', () => {
    const text = [
      'ARG BASE=debian:12',
      'FROM ${BASE} AS builder',
      'RUN curl -fsSL --connect-timeout 5 --max-time 60 -o /x https://example.invalid/x',
      'FROM builder',
      'HEALTHCHECK --interval=30s --timeout=10s CMD ["supervisor", "health"]',
      'ENTRYPOINT ["supervisor", "boot", "--"]',
    ].join('\n');
    expect(lintDockerfile(text)).toEqual([]);
  });
});

describe('shell scripts', () => {
  it('pass shellcheck', () => {
    const { shellcheck } = requireTools(['shellcheck'], 'the shell script check');
    const scripts = ['docker', 'docker/stage-1', 'docker/stage-2'].flatMap((dir) =>
      readdirSync(join(ROOT, dir)).filter((f) => f.endsWith('.sh') || f === 'infer-dev-proxy').map((f) => join(dir, f)),
    );
    expect(scripts.length).toBeGreaterThan(8);
    const run = spawnSync(shellcheck, ['-x', ...scripts], { cwd: ROOT, encoding: 'utf8' });
    expect(run.stdout + run.stderr).toBe('');
    expect(run.status).toBe(0);
  });
});

describe('.devcontainer/devcontainer.json', () => {
  it('uses the stage-2 compose service with the supervisor kept as PID 1, as me', () => {
    // JSON with comments: drop whole-line // comments.
    const config = JSON.parse(read('.devcontainer/devcontainer.json').replace(/^\s*\/\/.*$/gm, ''));
    expect(config).toMatchObject({ dockerComposeFile: ['../docker/compose.yaml'], service: 'stage-2', overrideCommand: false, remoteUser: 'me' });
    expect(config.hostRequirements.gpu).toBe(true);
    expect(config.forwardPorts).toEqual(expect.arrayContaining([8080, 11899]));
  });
});

describe('docker/run.sh --dry-run', () => {
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync('bash', ['docker/run.sh', '--dry-run', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });

  it('mounts the bundle, the config and one model folder read-only and turns the four toggles on', () => {
    const r = run(['--llama-pkg', 'package.json', '--llama-config', 'config-examples/demo.toml', '--model-dir', 'tools/tiny-model', '--gpus', 'all', '--port', '18080', '--bind', '127.0.0.1']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const line = r.stdout.trim();
    expect(line).toMatch(/^docker run --name infer-dev --hostname infer-dev -d /);
    expect(line).toContain('-p 127.0.0.1:2222:22 -p 127.0.0.1:18080:8080 -p 127.0.0.1:11899:11899 --gpus all');
    expect(line).toContain(`-v ${ROOT}/package.json:/tmp/package.json:ro -e AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT=1 -e AUTO_INFER_LLAMA_CPP_PKG_PATH=/tmp/package.json`);
    expect(line).toContain(`-v ${ROOT}/config-examples/demo.toml:/tmp/demo.toml:ro -e AUTO_INFER_LLAMA_CPP_ON_BOOT=1 -e AUTO_INFER_LLAMA_CPP_CONFIG=/tmp/demo.toml`);
    expect(line).toContain(`-v ${ROOT}/tools/tiny-model:/llm-models/tiny-model:ro`);
    expect(line).toMatch(/ infer-dev:stage-2$/);
  });

  it('--shell runs bash on the terminal; podman gets CDI devices; a bad option or file is a usage error', () => {
    const shell = run(['--shell', '--gpus', '0,1'], { ENGINE: 'podman' });
    expect(shell.stdout.trim()).toMatch(/^podman run .* -it --rm .*--device nvidia.com\/gpu=0 --device nvidia.com\/gpu=1 infer-dev:stage-2 bash -l$/);
    expect(run(['--gpus', 'two'])).toMatchObject({ status: 2, stderr: "run.sh: --gpus must be all, none or a list like 0,1, not 'two'\n" });
    expect(run(['--llama-pkg', 'no-such.tgz'])).toMatchObject({ status: 2, stderr: 'run.sh: --llama-pkg no-such.tgz: no such file or folder\n' });
    expect(run(['--bogus'])).toMatchObject({ status: 2, stderr: 'run.sh: unknown option --bogus (see --help)\n' });
  });
});

describe('docker/build.sh', () => {
  it('refuses an unknown engine or WITH_DEV_TOOLS value before building anything', () => {
    const build = (env: Record<string, string>) => spawnSync('bash', ['docker/build.sh'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
    expect(build({ ENGINE: 'nerdctl' })).toMatchObject({ status: 1, stderr: "build.sh: ENGINE must be docker or podman, not 'nerdctl'\n" });
    expect(build({ ENGINE: 'podman', WITH_DEV_TOOLS: 'yes' })).toMatchObject({ status: 1, stderr: "build.sh: WITH_DEV_TOOLS must be 0 or 1, not 'yes'\n" });
  });
});
