// Config text → launch plan: a pure function. The filesystem and PATH are
// asked through the injected context only (for the executable fallback), so
// every rule of upstream's runner (reference §4.2–4.4) is tested from strings.
import type { ConfigIssue } from '../errors.ts';
import { makeGatewayPlan } from '../gateway/gateway-config.ts';
import {
  DEFAULT_POLICY,
  INSTANCE_MARKER_ENV,
  type InstancePlan,
  type LaunchPlan,
  type SupervisionPolicy,
} from './instance-plan.ts';
import { isTable, mergeOverrides, OverridesSyntaxError, parseOverrides, type ConfigTable, type ConfigValue } from './overrides.ts';
import { formatPythonScalar } from './python-str.ts';
import { controlSchema, INSTANCE_NAME, masterSchema, serverSchema, type ControlTable } from './schema.ts';
import { readToml, TomlSyntaxError, type TomlSource } from './toml-source.ts';
import { describeValue, issuesFromZod } from './zod-issues.ts';

export const OVERRIDES_ENV = 'AUTO_INFER_LLAMA_CPP_OVERRIDES';

/** Upstream's executable fallback order when `llama_cpp_path` is empty or missing. */
export const EXECUTABLE_FALLBACKS = [
  '/soft/app/llama-cpp/bin/llama-server',
  '/hard/volume/workspace/llama-cpp/build/bin/llama-server',
] as const;

/** llama-server's own defaults, used for probing and the duplicate-port check. */
export const LLAMA_SERVER_DEFAULT_HOST = '127.0.0.1';
export const LLAMA_SERVER_DEFAULT_PORT = 8080;

/** What the planner may ask of the outside world. */
export interface PlanContext {
  /** The supervisor's environment: overrides, LD_LIBRARY_PATH. */
  env: Readonly<Record<string, string | undefined>>;
  /** For messages only. */
  file: string | null;
  /** Is this a regular file? (the executable fallback) */
  isFile(path: string): boolean;
  /** Resolve a bare command name on PATH; null when not found. */
  which(name: string): string | null;
}

export interface PlanResult {
  /** null when there is at least one error. */
  plan: LaunchPlan | null;
  issues: ConfigIssue[];
}

const ROOT_KEYS = ['master', 'instance', 'gateway'];

/** Turns config text into a launch plan, or into the list of everything wrong with it. */
export function makeLaunchPlan(text: string, ctx: PlanContext): PlanResult {
  const issues: ConfigIssue[] = [];
  let source: TomlSource;
  try {
    source = readToml(text);
  } catch (err) {
    if (!(err instanceof TomlSyntaxError)) throw err;
    return {
      plan: null,
      issues: [{ severity: 'error', file: ctx.file, line: err.line, column: err.column, path: '', message: `invalid TOML: ${err.message}` }],
    };
  }
  const overridden = new Set<string>();
  const report = (severity: ConfigIssue['severity'], path: readonly string[], message: string) => {
    issues.push(locateIssue({ severity, path, message, source, overridden, file: ctx.file }));
  };

  const document = source.document;
  const rawOverrides = ctx.env[OVERRIDES_ENV];
  if (rawOverrides !== undefined && rawOverrides.trim() !== '') {
    try {
      const overrides = parseOverrides(rawOverrides);
      collectLeafPaths(overrides, [], overridden);
      mergeOverrides(document, overrides);
    } catch (err) {
      if (!(err instanceof OverridesSyntaxError)) throw err;
      issues.push({ severity: 'error', file: OVERRIDES_ENV, path: '', message: `not usable as overrides: ${err.message}` });
      return { plan: null, issues };
    }
  }

  validateDocument({ document, report });
  if (issues.some((i) => i.severity === 'error')) return { plan: null, issues };

  const plan = buildPlan({ document, ctx, source });
  checkPorts({ plan, report });
  const gateway = makeGatewayPlan(document.gateway, plan, ctx.env);
  for (const issue of gateway.issues) report(issue.severity, issue.path, issue.message);
  if (gateway.plan) plan.gateway = gateway.plan;
  return { plan: issues.some((i) => i.severity === 'error') ? null : plan, issues };
}

type Report = (severity: ConfigIssue['severity'], path: readonly string[], message: string) => void;

// Checks shapes and types everywhere, reporting every problem (not just the first).
function validateDocument({ document, report }: { document: ConfigTable; report: Report }): void {
  for (const key of Object.keys(document)) {
    if (!ROOT_KEYS.includes(key)) report('error', [key], `unknown top-level key (expected one of: ${ROOT_KEYS.join(', ')})`);
  }
  const master = document.master;
  if (master !== undefined) {
    if (!isTable(master)) report('error', ['master'], `expected a table, got ${describeValue(master)}`);
    else validateWithZod({ schema: masterSchema, value: master, path: ['master'], report });
  }
  const instances = document.instance;
  if (instances === undefined) return;
  if (!isTable(instances)) {
    report('error', ['instance'], `expected a table, got ${describeValue(instances)}`);
    return;
  }
  for (const [name, value] of Object.entries(instances)) {
    const path = ['instance', name];
    if (name === 'control' || name === 'server') {
      if (!isTable(value)) report('error', path, `expected a table, got ${describeValue(value)}`);
      else if (name === 'control') validateWithZod({ schema: controlSchema, value, path, report });
      else validateServer({ table: value, path, report });
      continue;
    }
    if (!isTable(value)) {
      report('error', path, `an instance must be a table ([instance.${name}]), got ${describeValue(value)}`);
      continue;
    }
    if (!INSTANCE_NAME.test(name)) {
      report('error', path, 'invalid instance name (expected letters, digits, ".", "_" or "-", starting with a letter or digit)');
    }
    for (const [key, sub] of Object.entries(value)) {
      if (key !== 'control' && key !== 'server') {
        report('error', [...path, key], 'unknown key in an instance (expected one of: control, server)');
      } else if (!isTable(sub)) {
        report('error', [...path, key], `expected a table, got ${describeValue(sub)}`);
      } else if (key === 'control') {
        validateWithZod({ schema: controlSchema, value: sub, path: [...path, key], report });
      } else {
        validateServer({ table: sub, path: [...path, key], report });
      }
    }
  }
}

// Server values become argv: scalars and flat lists of strings or numbers only.
function validateServer({ table, path, report }: { table: ConfigTable; path: string[]; report: Report }): void {
  for (const [key, value] of Object.entries(table)) {
    const at = [...path, key];
    if (key === 'extra_args') {
      if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
        report('error', at, `expected a list of strings, got ${describeValue(value)}`);
      }
      continue;
    }
    if (isTable(value)) {
      report('error', at, 'a table is not a llama-server argument (expected a string, number, boolean or list)');
    } else if (value instanceof Date) {
      report('error', at, 'a date is not a llama-server argument (quote it to pass it as a string)');
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => {
        if (typeof item === 'boolean' || isTable(item) || Array.isArray(item) || item instanceof Date) {
          report('error', [...at, String(index)], `list items must be strings or numbers, got ${describeValue(item)}`);
        }
      });
    }
  }
  if (table.flash_attn === true || table.flash_attn === false) {
    report(
      'warning',
      [...path, 'flash_attn'],
      `a boolean gives ${table.flash_attn ? 'a bare --flash-attn' : 'no flag'}; current llama-server expects "on", "off" or "auto"`,
    );
  }
  const known = new Set(Object.keys(serverSchema.shape));
  const knownPart: ConfigTable = Object.create(null);
  for (const [key, value] of Object.entries(table)) if (known.has(key) && key !== 'extra_args') knownPart[key] = value;
  validateWithZod({ schema: serverSchema, value: knownPart, path, report });
}

function validateWithZod({
  schema,
  value,
  path,
  report,
}: {
  schema: typeof controlSchema | typeof masterSchema | typeof serverSchema;
  value: ConfigTable;
  path: string[];
  report: Report;
}): void {
  const result = schema.safeParse(toPlain(value));
  if (result.success) return;
  const known = Object.keys(schema.shape);
  for (const issue of issuesFromZod(result.error.issues, value, known)) report('error', [...path, ...issue.path], issue.message);
}

// zod validates numbers; TOML integers arrive as bigint.
function toPlain(value: ConfigValue): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (Array.isArray(value)) return value.map(toPlain);
  if (isTable(value)) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) out[k] = toPlain(v);
    return out;
  }
  return value;
}

function buildPlan({ document, ctx, source }: { document: ConfigTable; ctx: PlanContext; source: TomlSource }): LaunchPlan {
  const master = (document.master ?? {}) as ConfigTable;
  const enabled = master.enable !== false;
  const instances = (document.instance ?? {}) as ConfigTable;
  const globalControl = (instances.control ?? {}) as ConfigTable;
  const globalServer = (instances.server ?? {}) as ConfigTable;
  const executable = resolveExecutable(master.llama_cpp_path as string | undefined, ctx);
  const names = Object.keys(instances).filter((name) => name !== 'control' && name !== 'server');
  sortByDocumentOrder(names, source);
  return {
    enabled,
    instances: names.map((name) => {
      const instance = instances[name] as ConfigTable;
      return buildInstance({
        name,
        control: { ...globalControl, ...((instance.control ?? {}) as ConfigTable) },
        server: mergeServer(globalServer, (instance.server ?? {}) as ConfigTable),
        executable,
        ctx,
      });
    }),
  };
}

// JavaScript lists integer-like keys first; TOML (and upstream) keep document order.
function sortByDocumentOrder(names: string[], source: TomlSource): void {
  const lineOf = (name: string) => source.locate(['instance', name])?.line ?? Number.MAX_SAFE_INTEGER;
  names.sort((a, b) => lineOf(a) - lineOf(b));
}

/** Upstream's server merge: lists concatenate (global first), anything else replaces in the global key's position. */
export function mergeServer(globalServer: ConfigTable, instanceServer: ConfigTable): ConfigTable {
  const merged: ConfigTable = { ...globalServer };
  for (const [key, value] of Object.entries(instanceServer)) {
    const current = merged[key];
    merged[key] = Array.isArray(current) && Array.isArray(value) ? [...current, ...value] : value;
  }
  return merged;
}

/** Upstream's argv: `extra_args` first, then `--key-with-dashes` per key; true → bare flag, false → omitted, lists repeat. */
export function makeServerArgs(server: ConfigTable): string[] {
  const { extra_args: extra, ...rest } = server;
  const args: string[] = Array.isArray(extra) ? extra.map((item) => formatArg(item)) : [];
  for (const [key, value] of Object.entries(rest)) {
    const flag = `--${key.replaceAll('_', '-')}`;
    if (value === true) args.push(flag);
    else if (value === false) continue;
    else if (Array.isArray(value)) for (const item of value) args.push(flag, formatArg(item));
    else args.push(flag, formatArg(value));
  }
  return args;
}

function formatArg(value: ConfigValue): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') {
    return formatPythonScalar(value);
  }
  // Validation rejects tables, dates and nested lists before we get here.
  throw new TypeError(`unexpected server value ${describeValue(value)}`);
}

function buildInstance({
  name,
  control,
  server,
  executable,
  ctx,
}: {
  name: string;
  control: ConfigTable;
  server: ConfigTable;
  executable: { path: string; libraryDir: string | null };
  ctx: PlanContext;
}): InstancePlan {
  const c = control as ControlTable & ConfigTable;
  const args = makeServerArgs(server);
  const gpuIds = c.gpu_ids === undefined ? null : String(c.gpu_ids);
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(c.env ?? {})) env[key] = formatArg(value as ConfigValue);
  if (executable.libraryDir !== null) {
    const previous = env.LD_LIBRARY_PATH ?? ctx.env.LD_LIBRARY_PATH;
    env.LD_LIBRARY_PATH = previous ? `${executable.libraryDir}:${previous}` : executable.libraryDir;
  }
  if (gpuIds !== null && !/^all$/i.test(gpuIds)) env.CUDA_VISIBLE_DEVICES = /^none$/i.test(gpuIds) ? '' : gpuIds;
  env[INSTANCE_MARKER_ENV] = name;
  const logDir = (c.log_dir as string | undefined) ?? '/tmp';
  const listen = findListenAddress(args);
  return {
    name,
    enabled: c.enabled !== false,
    executable: executable.path,
    args,
    env,
    logFile: (c.log_file as string | undefined) ?? joinPath(logDir, `llama-server-${name}.log`),
    gpuIds,
    host: listen.host,
    port: listen.port,
    probe: 'http',
    background: c.background !== false,
    user: (c.user as string | undefined) ?? null,
    model: findModel(args),
    policy: makePolicy(c),
  };
}

function makePolicy(c: ControlTable & ConfigTable): SupervisionPolicy {
  const num = (value: unknown, fallback: number) => (value === undefined ? fallback : Number(value));
  return {
    restart: c.restart ?? DEFAULT_POLICY.restart,
    maxRestarts: num(c.max_restarts, DEFAULT_POLICY.maxRestarts),
    restartWindowS: num(c.restart_window_s, DEFAULT_POLICY.restartWindowS),
    backoffInitialMs: num(c.backoff_initial_ms, DEFAULT_POLICY.backoffInitialMs),
    backoffMaxMs: num(c.backoff_max_ms, DEFAULT_POLICY.backoffMaxMs),
    stopTimeoutS: num(c.stop_timeout_s, DEFAULT_POLICY.stopTimeoutS),
    healthPath: c.health_path ?? DEFAULT_POLICY.healthPath,
    healthIntervalS: num(c.health_interval_s, DEFAULT_POLICY.healthIntervalS),
    startupStallS: num(c.startup_stall_s, DEFAULT_POLICY.startupStallS),
    logMaxBytes: num(c.log_max_bytes, DEFAULT_POLICY.logMaxBytes),
    logKeep: num(c.log_keep, DEFAULT_POLICY.logKeep),
  };
}

// Python's os.path.join for a relative second part.
function joinPath(dir: string, file: string): string {
  if (dir === '' || dir.endsWith('/')) return dir + file;
  return `${dir}/${file}`;
}

function dirname(path: string): string {
  const cut = path.lastIndexOf('/');
  if (cut < 0) return '';
  return cut === 0 ? '/' : path.slice(0, cut);
}

/** `[master] llama_cpp_path`, else the first fallback that is a file, else `llama-server` on PATH. */
export function resolveExecutable(configured: string | undefined, ctx: PlanContext): { path: string; libraryDir: string | null } {
  let path = configured !== undefined && configured !== '' ? configured : undefined;
  path ??= EXECUTABLE_FALLBACKS.find((candidate) => ctx.isFile(candidate)) ?? 'llama-server';
  if (path.includes('/')) return { path, libraryDir: dirname(path) };
  const found = ctx.which(path);
  return { path, libraryDir: found === null ? null : dirname(found) };
}

// The last --host/--port on the command line wins, as in llama-server.
function findListenAddress(args: string[]): { host: string; port: number } {
  const host = findFlagValue(args, ['--host']) ?? LLAMA_SERVER_DEFAULT_HOST;
  const port = Number(findFlagValue(args, ['--port']) ?? LLAMA_SERVER_DEFAULT_PORT);
  return { host, port };
}

function findModel(args: string[]): string | null {
  return findFlagValue(args, ['--model', '-m']);
}

function findFlagValue(args: string[], flags: string[]): string | null {
  let found: string | null = null;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (flags.includes(arg) && i + 1 < args.length) found = args[++i];
    else {
      const flag = flags.find((f) => arg.startsWith(`${f}=`));
      if (flag) found = arg.slice(flag.length + 1);
    }
  }
  return found;
}

// Two enabled instances on one port would fight over it; llama-server's default port counts.
function checkPorts({ plan, report }: { plan: LaunchPlan; report: Report }): void {
  const owners = new Map<number, string>();
  for (const instance of plan.instances) {
    const at = ['instance', instance.name, 'server', 'port'];
    if (!Number.isInteger(instance.port) || instance.port < 1 || instance.port > 65535) {
      report('error', at, `expected a port number between 1 and 65535, got ${JSON.stringify(String(instance.port))}`);
      continue;
    }
    if (!instance.enabled) continue;
    const owner = owners.get(instance.port);
    if (owner !== undefined) {
      report('error', at, `port ${instance.port} is also used by instance "${owner}" (each enabled instance needs its own port)`);
    } else owners.set(instance.port, instance.name);
  }
}

function collectLeafPaths(table: ConfigTable, prefix: string[], into: Set<string>): void {
  for (const [key, value] of Object.entries(table)) {
    const path = [...prefix, key];
    if (isTable(value)) collectLeafPaths(value, path, into);
    else into.add(path.join('.'));
  }
}

function locateIssue({
  severity,
  path,
  message,
  source,
  overridden,
  file,
}: {
  severity: ConfigIssue['severity'];
  path: readonly string[];
  message: string;
  source: TomlSource;
  overridden: Set<string>;
  file: string | null;
}): ConfigIssue {
  const dotted = path.join('.');
  for (let n = path.length; n > 0; n--) {
    if (overridden.has(path.slice(0, n).join('.'))) return { severity, file: OVERRIDES_ENV, path: dotted, message };
  }
  const position = source.locate(path);
  return { severity, file, line: position?.line, column: position?.column, path: dotted, message };
}
