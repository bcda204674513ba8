// Shapes and types of the whole document, every problem reported (not just
// the first): root keys, `[master]`, the instance tables and their control and
// server tables, and no NUL byte anywhere. `[gateway]` is checked where it is
// planned (gateway-plan.ts).
import type { Report } from './issue-location.ts';
import { isTable, type ConfigTable, type ConfigValue } from './overrides.ts';
import * as z from 'zod/mini';
import { CONFIG_KINDS, type ConfigKind } from './config-kind.ts';
import { COMMAND_ONLY_KEYS, controlSchema, RPC_WORKER_KEYS, INSTANCE_NAME, instanceSchema, masterSchema, serverSchema, sglangMasterSchema, vllmMasterSchema } from './schema.ts';
import { checkTable, describeValue } from './zod-issues.ts';

/** Per kind: the root keys (only our own llama.cpp file has a gateway) and the [master] schema. */
const KIND_SHAPE: Readonly<Record<ConfigKind, { rootKeys: string[]; master: z.ZodMiniObject }>> = {
  'llama-cpp': { rootKeys: ['master', 'instance', 'gateway'], master: masterSchema },
  vllm: { rootKeys: ['master', 'instance'], master: vllmMasterSchema },
  sglang: { rootKeys: ['master', 'instance'], master: sglangMasterSchema },
};

/** Reports everything wrong with the document's shape and values. */
export function validateDocument(document: ConfigTable, report: Report, kind: ConfigKind = 'llama-cpp'): void {
  const shape = KIND_SHAPE[kind];
  const ROOT_KEYS = shape.rootKeys;
  reportNulBytes(document, [], report);
  for (const key of Object.keys(document)) {
    if (!ROOT_KEYS.includes(key)) report('error', [key], `unknown top-level key (expected one of: ${ROOT_KEYS.join(', ')})`);
  }
  const master = document.master;
  if (master !== undefined) {
    if (!isTable(master)) report('error', ['master'], `expected a table, got ${describeValue(master)}`);
    else {
      validateTable(shape.master, master, ['master'], report);
      hintOtherKind(master, kind, report);
    }
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
      else if (name === 'control') validateTable(controlSchema, value, path, report);
      else validateServer(value, path, report);
      continue;
    }
    if (!isTable(value)) {
      report('error', path, `an instance must be a table ([instance.${name}]), got ${describeValue(value)}`);
      continue;
    }
    if (!INSTANCE_NAME.test(name)) {
      report('error', path, 'invalid instance name (expected letters, digits, ".", "_" or "-", starting with a letter or digit)');
    }
    validateInstanceKeys(value, path, report, kind);
    for (const [key, sub] of Object.entries(value)) {
      if (key !== 'control' && key !== 'server') continue;
      if (!isTable(sub)) {
        report('error', [...path, key], `expected a table, got ${describeValue(sub)}`);
      } else if (key === 'control') {
        validateTable(controlSchema, sub, [...path, key], report);
      } else {
        validateServer(sub, [...path, key], report);
      }
    }
  }
}

// A [master] key of another runner's file: a warning beside the unknown-key error says which file it looks like.
const KIND_MASTER_KEYS: ReadonlyArray<[ConfigKind, readonly string[]]> = [
  ['vllm', ['pixi_project_dir', 'pixi_environment', 'api_server_module']],
  ['sglang', ['project_dir', 'python_path', 'server_module']],
  ['llama-cpp', ['llama_cpp_path', 'memory_budget_mib']],
];

function hintOtherKind(master: ConfigTable, kind: ConfigKind, report: Report): void {
  for (const [other, keys] of KIND_MASTER_KEYS) {
    const key = keys.find((k) => k in master);
    if (other === kind || key === undefined) continue;
    const how = other === 'llama-cpp' ? 'without --engine (AUTO_INFER_LLAMA_CPP_CONFIG)' : `with --engine ${other} (${CONFIG_KINDS[other].configEnv})`;
    report('warning', ['master', key], `${key} belongs in ${other === 'llama-cpp' ? 'a llama.cpp' : `upstream's ${other}`} runner file: is this one? check and serve it ${how}`);
    return;
  }
}

// The keys of an instance table besides control and server: its engine, and a command instance's launch.
function validateInstanceKeys(instance: ConfigTable, path: string[], report: Report, kind: ConfigKind): void {
  const own = CONFIG_KINDS[kind].engine;
  const extra: ConfigTable = Object.create(null);
  for (const [key, value] of Object.entries(instance)) {
    if (key === 'control' || key === 'server') continue;
    if (!(key in instanceSchema.shape)) {
      report(
        'error',
        [...path, key],
        `unknown key in an instance (expected one of: control, server, engine, rpc; with engine = "command": ${COMMAND_ONLY_KEYS.join(', ')}; with engine = "rpc-worker": ${RPC_WORKER_KEYS.join(', ')})`,
      );
      continue;
    }
    extra[key] = value;
  }
  const checked = checkTable(instanceSchema, extra);
  if (!checked.ok) {
    for (const issue of checked.issues) report('error', [...path, ...issue.path], issue.message);
    return;
  }
  const engine = (extra.engine as string | undefined) ?? own;
  // rpc-server comes with llama-server: its workers belong in llama.cpp's file.
  const allowed = kind === 'llama-cpp' ? [own, 'command', 'rpc-worker'] : [own, 'command'];
  if (!allowed.includes(engine)) {
    report('error', [...path, 'engine'], `this is a ${kind} config: engine may be ${allowed.map((e) => `"${e}"`).join(', ')}, not "${engine}" (put ${engine} instances in their own file)`);
    return;
  }
  if (extra.rpc !== undefined && engine !== 'llama-server') report('error', [...path, 'rpc'], `rpc lists a llama-server leader's RPC workers; a ${engine} instance has none`);
  const rpcOnly = RPC_WORKER_KEYS.filter((key) => !(COMMAND_ONLY_KEYS as readonly string[]).includes(key));
  if (engine === 'rpc-worker') {
    for (const key of COMMAND_ONLY_KEYS) {
      if (key in extra && !(RPC_WORKER_KEYS as readonly string[]).includes(key)) report('error', [...path, key], `${key} is a key of engine = "command" instances, not of rpc-worker (expected: ${RPC_WORKER_KEYS.join(', ')})`);
    }
    if (instance.server !== undefined) report('error', [...path, 'server'], 'an rpc-worker instance has no [server] table: rpc-server takes host, port, device, threads and cache at the instance level');
    return;
  }
  for (const key of rpcOnly) {
    if (key in extra) report('error', [...path, key], `${key} is a key of engine = "rpc-worker" instances`);
  }
  if (engine === 'command') {
    if (extra.command === undefined) report('error', [...path, 'command'], 'engine = "command" needs command = ["program", "arg", ...]');
    if (extra.port === undefined) report('error', [...path, 'port'], 'engine = "command" needs the port it listens on (port = 8080), for readiness and the gateway');
    if (instance.server !== undefined) report('error', [...path, 'server'], 'a command instance has no [server] table: put its arguments in command');
    return;
  }
  for (const key of COMMAND_ONLY_KEYS) {
    if (key in extra) report('error', [...path, key], `${key} is a key of engine = "command" instances; a ${engine} instance takes its arguments from [instance.<name>.server]`);
  }
}

// Config strings end up as paths, argv, environment and headers, all C strings
// to the kernel: a NUL byte would make spawn or open throw, so it is an error
// here, where the key is known. TOML and JSON can both write one (\u0000).
function reportNulBytes(value: ConfigValue, path: string[], report: Report): void {
  if (typeof value === 'string') {
    if (value.includes('\0')) report('error', path, `contains a NUL byte (${describeValue(value)}); no path, argument or variable can carry one`);
  } else if (Array.isArray(value)) {
    value.forEach((item, index) => reportNulBytes(item, [...path, String(index)], report));
  } else if (isTable(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes('\0')) report('error', path, `the key ${JSON.stringify(key)} contains a NUL byte`);
      else reportNulBytes(item, [...path, key], report);
    }
  }
}

// Server values become argv: scalars and flat lists of strings or numbers only.
function validateServer(table: ConfigTable, path: string[], report: Report): void {
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
  validateTable(serverSchema, knownPart, path, report);
}

function validateTable(
  schema: z.ZodMiniObject,
  table: ConfigTable,
  path: string[],
  report: Report,
): void {
  const checked = checkTable(schema, table);
  if (!checked.ok) for (const issue of checked.issues) report('error', [...path, ...issue.path], issue.message);
}
