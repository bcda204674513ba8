// A renderer for the subset of Helm's Go templates that deploy/helm/infer-dev
// uses, so `npm test` can render the chart without a helm binary (Debian ships
// none and no maintained npm package renders Helm templates). Everything
// outside the subset is an error naming the file and the construct, never a
// silent difference from helm:
//
//   text, {{ }} with {{- and -}} trimming, {{/* comments */}}
//   if / else if / else / with / range (dot rebinding, no variables) / end
//   define "name" / include "name" DOT, in templates/_*.tpl
//   pipelines with | and (sub expressions); . .Field.Chain $ $.Field
//   "strings", `raw strings`, integers, true, false, nil
//   .Values .Release.{Name,Namespace,Service} .Chart.{Name,Version,AppVersion}
//   functions in FUNCTIONS below
//
// Go's types are kept where they change the output: numbers from values are
// float64 (plain JS numbers), integer literals and add/int results are int
// (BigInt). As in Go, comparing the two kinds is an error, and a float64 of a
// million or more prints as 1e+06, so printing one is an error here (use int).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, parseAllDocuments, stringify } from 'yaml';

export class TemplateError extends Error {}

type Value = unknown;
type Node =
  | { kind: 'text'; text: string }
  | { kind: 'output'; pipe: Pipe; at: string }
  | { kind: 'if'; branches: Array<{ cond: Pipe | null; body: Node[] }>; at: string }
  | { kind: 'with' | 'range'; pipe: Pipe; body: Node[]; otherwise: Node[]; at: string };
type Pipe = Cmd[];
type Cmd = Operand[];
type Operand =
  | { kind: 'field'; root: 'dot' | 'dollar'; path: string[] }
  | { kind: 'literal'; value: Value }
  | { kind: 'ident'; name: string }
  | { kind: 'sub'; pipe: Pipe };

interface Scope {
  dot: Value;
  root: Value;
  defines: Map<string, Node[]>;
}

// ---- lexing: text and actions, with Go's trim markers
interface RawAction {
  body: string;
  at: string;
}
type Piece = { text: string } | { action: RawAction };

function lex(source: string, file: string): Piece[] {
  const pieces: Piece[] = [];
  let i = 0;
  let trimNext = false;
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    let text = source.slice(i, open === -1 ? source.length : open);
    if (trimNext) text = text.replace(/^[ \t\r\n]+/, '');
    if (open === -1) {
      pieces.push({ text });
      break;
    }
    const at = `${file}:${lineOf(open)}`;
    let start = open + 2;
    // Go: "{{- " trims; "{{-3}}" is the number -3.
    if (/^-[ \t\r\n]/.test(source.slice(start, start + 2))) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start += 2;
    }
    pieces.push({ text });
    let close: number;
    if (source.slice(start).trimStart().startsWith('/*')) {
      const end = source.indexOf('*/', start);
      if (end === -1) throw new TemplateError(`${at}: unclosed comment`);
      const tail = /^( -)?}}/.exec(source.slice(end + 2));
      if (!tail) throw new TemplateError(`${at}: a comment must end with */}} or */ -}}`);
      trimNext = tail[1] !== undefined;
      i = end + 2 + tail[0].length;
      continue;
    }
    close = findClose(source, start, at);
    let body = source.slice(start, close);
    trimNext = /[ \t\r\n]-$/.test(body);
    if (trimNext) body = body.slice(0, -1);
    pieces.push({ action: { body: body.trim(), at } });
    i = close + 2;
  }
  return pieces;
}

// The "}}" that ends an action, skipping any inside string literals.
function findClose(source: string, from: number, at: string): number {
  let quote: string | null = null;
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === '`') quote = c;
    else if (c === '}' && source[i + 1] === '}') return i;
  }
  throw new TemplateError(`${at}: unclosed action`);
}

// ---- parsing actions into a tree
type Token = { t: 'str' | 'num' | 'ident' | 'field' | 'dollar' | 'dot' | 'pipe' | 'lparen' | 'rparen' | 'other'; v: string };

function tokenize(body: string, at: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s+|"(?:[^"\\]|\\.)*"|`[^`]*`|-?\d+(?![\w.])|\$(?:\.[A-Za-z_]\w*)*|\.(?:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)?|[A-Za-z_]\w*|\||\(|\)|:=|=|,|./gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(body)) !== null && m[0] !== '') {
    const s = m[0];
    if (/^\s+$/.test(s)) continue;
    if (s.startsWith('"')) tokens.push({ t: 'str', v: JSON.parse(s.replace(/\\'/g, "'")) as string });
    else if (s.startsWith('`')) tokens.push({ t: 'str', v: s.slice(1, -1) });
    else if (/^-?\d+$/.test(s)) tokens.push({ t: 'num', v: s });
    else if (s.startsWith('$')) tokens.push({ t: 'dollar', v: s });
    else if (s === '.') tokens.push({ t: 'dot', v: s });
    else if (s.startsWith('.')) tokens.push({ t: 'field', v: s });
    else if (/^[A-Za-z_]/.test(s)) tokens.push({ t: 'ident', v: s });
    else if (s === '|') tokens.push({ t: 'pipe', v: s });
    else if (s === '(') tokens.push({ t: 'lparen', v: s });
    else if (s === ')') tokens.push({ t: 'rparen', v: s });
    else throw new TemplateError(`${at}: "${s}" is not in the renderer's subset (no variables or assignments)`);
  }
  return tokens;
}

function parsePipe(tokens: Token[], at: string): Pipe {
  let pos = 0;
  const pipe = (): Pipe => {
    const cmds: Pipe = [];
    let cmd: Cmd = [];
    while (pos < tokens.length) {
      const tok = tokens[pos++];
      if (tok.t === 'pipe') {
        if (cmd.length === 0) throw new TemplateError(`${at}: empty command in a pipeline`);
        cmds.push(cmd);
        cmd = [];
      } else if (tok.t === 'rparen') {
        pos--;
        break;
      } else if (tok.t === 'lparen') {
        const inner = pipe();
        if (tokens[pos++]?.t !== 'rparen') throw new TemplateError(`${at}: unclosed (`);
        cmd.push({ kind: 'sub', pipe: inner });
      } else cmd.push(operand(tok, at));
    }
    if (cmd.length === 0) throw new TemplateError(`${at}: empty command in a pipeline`);
    cmds.push(cmd);
    return cmds;
  };
  const result = pipe();
  if (pos !== tokens.length) throw new TemplateError(`${at}: unexpected )`);
  return result;
}

function operand(tok: Token, at: string): Operand {
  switch (tok.t) {
    case 'str':
      return { kind: 'literal', value: tok.v };
    case 'num':
      return { kind: 'literal', value: BigInt(tok.v) };
    case 'dot':
      return { kind: 'field', root: 'dot', path: [] };
    case 'field':
      return { kind: 'field', root: 'dot', path: tok.v.slice(1).split('.') };
    case 'dollar':
      if (tok.v !== '$' && !tok.v.startsWith('$.')) throw new TemplateError(`${at}: variables (${tok.v}) are not in the renderer's subset`);
      return { kind: 'field', root: 'dollar', path: tok.v === '$' ? [] : tok.v.slice(2).split('.') };
    case 'ident':
      if (tok.v === 'true' || tok.v === 'false') return { kind: 'literal', value: tok.v === 'true' };
      if (tok.v === 'nil') return { kind: 'literal', value: null };
      if (!Object.hasOwn(FUNCTIONS, tok.v)) throw new TemplateError(`${at}: function "${tok.v}" is not in the renderer's subset`);
      return { kind: 'ident', name: tok.v };
    default:
      throw new TemplateError(`${at}: unexpected "${tok.v}"`);
  }
}

const KEYWORD = /^(if|else|end|with|range|define|template|block|break|continue)\b\s*([\s\S]*)$/;

interface Parsed {
  nodes: Node[];
  defines: Map<string, Node[]>;
}

function parseTemplate(source: string, file: string): Parsed {
  const pieces = lex(source, file);
  const defines = new Map<string, Node[]>();
  let pos = 0;
  // Parses until an else/end at this level; returns the nodes and the keyword that stopped it.
  const block = (inside: string | null): { nodes: Node[]; stop: RawAction & { keyword: string; rest: string } } | { nodes: Node[]; stop: null } => {
    const nodes: Node[] = [];
    while (pos < pieces.length) {
      const piece = pieces[pos++];
      if ('text' in piece) {
        if (piece.text) nodes.push({ kind: 'text', text: piece.text });
        continue;
      }
      const { body, at } = piece.action;
      const kw = KEYWORD.exec(body);
      if (!kw) {
        nodes.push({ kind: 'output', pipe: parsePipe(tokenize(body, at), at), at });
        continue;
      }
      const [, keyword, rest] = kw;
      if (keyword === 'else' || keyword === 'end') {
        if (inside === null) throw new TemplateError(`${at}: {{ ${keyword} }} without an open block`);
        return { nodes, stop: { body, at, keyword, rest } };
      }
      if (keyword === 'if') nodes.push(parseIf(rest, at));
      else if (keyword === 'with' || keyword === 'range') {
        const pipe = parsePipe(tokenize(rest, at), at);
        const first = block(keyword);
        if (first.stop === null) throw new TemplateError(`${at}: {{ ${keyword} }} has no {{ end }}`);
        let otherwise: Node[] = [];
        if (first.stop.keyword === 'else') {
          if (first.stop.rest) throw new TemplateError(`${first.stop.at}: else ${first.stop.rest} inside ${keyword} is not in the subset`);
          const second = block(keyword);
          if (second.stop === null || second.stop.keyword !== 'end') throw new TemplateError(`${at}: {{ ${keyword} }} has no {{ end }}`);
          otherwise = second.nodes;
        }
        nodes.push({ kind: keyword, pipe, body: first.nodes, otherwise, at });
      } else if (keyword === 'define') {
        if (inside !== null) throw new TemplateError(`${at}: define must be at the top level`);
        const name = /^"([^"]+)"$/.exec(rest.trim());
        if (!name) throw new TemplateError(`${at}: define needs one "name"`);
        const inner = block('define');
        if (inner.stop === null || inner.stop.keyword !== 'end') throw new TemplateError(`${at}: define "${name[1]}" has no {{ end }}`);
        defines.set(name[1], inner.nodes);
      } else throw new TemplateError(`${at}: {{ ${keyword} }} is not in the renderer's subset`);
    }
    if (inside !== null) throw new TemplateError(`${file}: {{ ${inside} }} has no {{ end }}`);
    return { nodes, stop: null };
  };
  const parseIf = (condText: string, at: string): Node => {
    const branches: Array<{ cond: Pipe | null; body: Node[] }> = [];
    let cond: Pipe | null = parsePipe(tokenize(condText, at), at);
    for (;;) {
      const part = block('if');
      if (part.stop === null) throw new TemplateError(`${at}: {{ if }} has no {{ end }}`);
      branches.push({ cond, body: part.nodes });
      if (part.stop.keyword === 'end') return { kind: 'if', branches, at };
      if (cond === null) throw new TemplateError(`${part.stop.at}: else after else`);
      const elseIf = /^if\b\s*([\s\S]+)$/.exec(part.stop.rest);
      if (part.stop.rest && !elseIf) throw new TemplateError(`${part.stop.at}: else ${part.stop.rest} is not in the subset`);
      cond = elseIf ? parsePipe(tokenize(elseIf[1], part.stop.at), part.stop.at) : null;
    }
  };
  return { nodes: block(null).nodes, defines };
}

// ---- evaluation
const isInt = (v: Value): v is bigint => typeof v === 'bigint';

/** Go template truth: false, 0, nil and empty strings, lists and maps are false. */
function truthy(v: Value): boolean {
  if (v === null || v === undefined || v === false || v === '' || v === 0 || v === 0n) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

function printValue(v: Value, at: string): string {
  if (v === null || v === undefined) return ''; // helm renders <no value> as empty
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean' || isInt(v)) return String(v);
  if (typeof v === 'number') {
    if (Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-4)) throw new TemplateError(`${at}: helm would print the float64 ${v} in e-notation; pipe it through int`);
    return String(v);
  }
  throw new TemplateError(`${at}: printing a ${Array.isArray(v) ? 'list' : 'map'} directly; use toYaml or toJson`);
}

function compare(a: Value, b: Value, at: string): number {
  const kind = (v: Value) => (isInt(v) ? 'int' : typeof v === 'number' ? 'float64' : typeof v);
  if (kind(a) !== kind(b)) throw new TemplateError(`${at}: incompatible types for comparison (${kind(a)} and ${kind(b)})`);
  if (typeof a === 'string' || typeof a === 'number' || isInt(a)) return a < (b as typeof a) ? -1 : a > (b as typeof a) ? 1 : 0;
  if (typeof a === 'boolean') return a === b ? 0 : 1;
  throw new TemplateError(`${at}: cannot compare ${kind(a)}`);
}

const toInt = (v: Value, at: string): bigint => {
  if (isInt(v)) return v;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
  if (v === null || v === undefined) return 0n;
  throw new TemplateError(`${at}: int of ${typeof v}`);
};

// JSON/YAML output of values holding BigInt (from add/int).
const plain = (v: Value): Value =>
  isInt(v) ? Number(v) : Array.isArray(v) ? v.map(plain) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)])) : v;

type Fn = (args: Value[], ctx: { at: string; scope: Scope }) => Value;
const arity = (name: string, n: number, args: Value[], at: string) => {
  if (args.length !== n) throw new TemplateError(`${at}: ${name} takes ${n} argument${n === 1 ? '' : 's'}, got ${args.length}`);
};
const indent = (n: bigint | number, s: string) => s.split('\n').map((line) => ' '.repeat(Number(n)) + line).join('\n');

/** The functions of the subset, with helm's (sprig's) behaviour. */
const FUNCTIONS: Record<string, Fn> = {
  include: ([name, dot, ...extra], { at, scope }) => {
    if (extra.length > 0 || typeof name !== 'string') throw new TemplateError(`${at}: include takes "name" and a value`);
    const body = scope.defines.get(name);
    if (!body) throw new TemplateError(`${at}: no template named "${name}"`);
    return evaluate(body, { ...scope, dot });
  },
  toYaml: (args, { at }) => {
    arity('toYaml', 1, args, at);
    if (args[0] === null || args[0] === undefined) return 'null';
    return stringify(plain(args[0]), { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
  },
  toJson: (args, { at }) => (arity('toJson', 1, args, at), JSON.stringify(plain(args[0]) ?? null)),
  // sprig skips nil arguments: `{{ nil | quote }}` is empty, not "".
  quote: (args, { at }) => args.filter((a) => a !== null && a !== undefined).map((a) => JSON.stringify(printValue(a, at))).join(' '),
  nindent: ([n, s, ...rest], { at }) => {
    if (rest.length > 0 || !isInt(n)) throw new TemplateError(`${at}: nindent takes a count and a string`);
    return `\n${indent(n, printValue(s, at))}`;
  },
  indent: ([n, s, ...rest], { at }) => {
    if (rest.length > 0 || !isInt(n)) throw new TemplateError(`${at}: indent takes a count and a string`);
    return indent(n, printValue(s, at));
  },
  default: (args, { at }) => (arity('default', 2, args, at), truthy(args[1]) ? args[1] : args[0]),
  required: ([message, v, ...rest], { at }) => {
    if (rest.length > 0) throw new TemplateError(`${at}: required takes a message and a value`);
    if (v === null || v === undefined || v === '') throw new TemplateError(`${at}: ${String(message)}`);
    return v;
  },
  fail: (args, { at }) => {
    arity('fail', 1, args, at);
    throw new TemplateError(`${at}: ${String(args[0])}`);
  },
  printf: ([format, ...args], { at }) => {
    let i = 0;
    return String(format).replace(/%[sdv%]/g, (spec) => {
      if (spec === '%%') return '%';
      if (i >= args.length) throw new TemplateError(`${at}: printf: too few arguments for ${String(format)}`);
      const v = args[i++];
      if (spec === '%d' && !isInt(v)) throw new TemplateError(`${at}: printf %d of a non-int (use int)`);
      return printValue(v, at);
    });
  },
  add: (args, { at }) => args.reduce<bigint>((sum, v) => sum + toInt(v, at), 0n),
  int: (args, { at }) => (arity('int', 1, args, at), toInt(args[0], at)),
  trunc: ([n, s], { at }) => {
    if (!isInt(n)) throw new TemplateError(`${at}: trunc takes a count`);
    return printValue(s, at).slice(0, Number(n));
  },
  trimSuffix: ([suffix, s], { at }) => {
    const text = printValue(s, at);
    return text.endsWith(String(suffix)) ? text.slice(0, text.length - String(suffix).length) : text;
  },
  eq: (args, { at }) => (arity('eq', 2, args, at), compare(args[0], args[1], at) === 0),
  ne: (args, { at }) => (arity('ne', 2, args, at), compare(args[0], args[1], at) !== 0),
  lt: (args, { at }) => (arity('lt', 2, args, at), compare(args[0], args[1], at) < 0),
  le: (args, { at }) => (arity('le', 2, args, at), compare(args[0], args[1], at) <= 0),
  gt: (args, { at }) => (arity('gt', 2, args, at), compare(args[0], args[1], at) > 0),
  ge: (args, { at }) => (arity('ge', 2, args, at), compare(args[0], args[1], at) >= 0),
  not: (args, { at }) => (arity('not', 1, args, at), !truthy(args[0])),
  and: (args) => args.find((a) => !truthy(a)) ?? args[args.length - 1],
  or: (args) => args.find((a) => truthy(a)) ?? args[args.length - 1],
  empty: (args, { at }) => (arity('empty', 1, args, at), !truthy(args[0])),
};

const TOP_LEVEL: Record<string, readonly string[] | null> = { Values: null, Release: ['Name', 'Namespace', 'Service'], Chart: ['Name', 'Version', 'AppVersion'] };

function lookup(base: Value, path: string[], at: string, fromRoot: boolean): Value {
  let v = base;
  path.forEach((key, i) => {
    if (fromRoot && i === 0 && !Object.hasOwn(TOP_LEVEL, key)) throw new TemplateError(`${at}: .${key} is not in the renderer's subset (only .Values, .Release, .Chart)`);
    if (fromRoot && i === 1 && TOP_LEVEL[path[0]] && !TOP_LEVEL[path[0]]!.includes(key)) throw new TemplateError(`${at}: .${path[0]}.${key} is not in the renderer's subset`);
    if (v === null || v === undefined) throw new TemplateError(`${at}: nil pointer evaluating .${path.slice(0, i).join('.')}.${key}`);
    if (typeof v !== 'object' || Array.isArray(v)) throw new TemplateError(`${at}: can't evaluate field ${key} in a ${Array.isArray(v) ? 'list' : typeof v}`);
    v = Object.hasOwn(v, key) ? (v as Record<string, Value>)[key] : undefined;
  });
  return v;
}

function runPipe(pipe: Pipe, scope: Scope, at: string): Value {
  let piped: Value[] = [];
  for (const cmd of pipe) {
    const [head, ...rest] = cmd;
    const value = (op: Operand): Value => {
      switch (op.kind) {
        case 'literal':
          return op.value;
        case 'sub':
          return runPipe(op.pipe, scope, at);
        case 'field':
          if (op.root === 'dollar') return lookup(scope.root, op.path, at, true);
          return lookup(scope.dot, op.path, at, scope.dot === scope.root);
        case 'ident':
          return FUNCTIONS[op.name]([], { at, scope });
      }
    };
    if (head.kind === 'ident') {
      piped = [FUNCTIONS[head.name]([...rest.map(value), ...piped], { at, scope })];
    } else {
      const v = value(head);
      if (rest.length > 0 || piped.length > 0) throw new TemplateError(`${at}: a value cannot take arguments (method calls are not in the subset)`);
      piped = [v];
    }
  }
  return piped[0];
}

function evaluate(nodes: Node[], scope: Scope): string {
  let out = '';
  for (const node of nodes) {
    switch (node.kind) {
      case 'text':
        out += node.text;
        break;
      case 'output':
        out += printValue(runPipe(node.pipe, scope, node.at), node.at);
        break;
      case 'if': {
        const branch = node.branches.find((b) => b.cond === null || truthy(runPipe(b.cond, scope, node.at)));
        if (branch) out += evaluate(branch.body, scope);
        break;
      }
      case 'with': {
        const v = runPipe(node.pipe, scope, node.at);
        out += truthy(v) ? evaluate(node.body, { ...scope, dot: v }) : evaluate(node.otherwise, scope);
        break;
      }
      case 'range': {
        const v = runPipe(node.pipe, scope, node.at);
        if (!truthy(v)) {
          out += evaluate(node.otherwise, scope);
          break;
        }
        const items = Array.isArray(v) ? v : typeof v === 'object' ? Object.keys(v as object).sort().map((k) => (v as Record<string, Value>)[k]) : null;
        if (items === null) throw new TemplateError(`${node.at}: range over ${typeof v}`);
        for (const item of items) out += evaluate(node.body, { ...scope, dot: item });
        break;
      }
    }
  }
  return out;
}

/** Deep merge as helm does for --values files: maps merge, everything else replaces. */
function merge(base: Value, over: Value): Value {
  if (!over || typeof over !== 'object' || Array.isArray(over) || !base || typeof base !== 'object' || Array.isArray(base)) return over;
  const out: Record<string, Value> = { ...(base as Record<string, Value>) };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? merge(out[k], v) : v;
  return out;
}

export interface RenderOptions {
  /** Merged over values.yaml, as `helm template --values`. */
  values?: Record<string, unknown>;
  release?: { name?: string; namespace?: string };
}

export interface RenderedFile {
  /** templates/<file> */
  file: string;
  text: string;
  /** The YAML documents, empty ones dropped (as helm does). */
  documents: Record<string, unknown>[];
}

/** Renders every templates/*.yaml of the chart at `chartDir` (the _*.tpl files only define). */
export function renderChart(chartDir: string, options: RenderOptions = {}): RenderedFile[] {
  const chart = parse(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
  const values = merge(parse(readFileSync(join(chartDir, 'values.yaml'), 'utf8')) ?? {}, options.values ?? {});
  const root = {
    Values: values,
    Release: { Name: options.release?.name ?? 'release-name', Namespace: options.release?.namespace ?? 'default', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const dir = join(chartDir, 'templates');
  const files = readdirSync(dir).sort();
  const defines = new Map<string, Node[]>();
  const parsed: Array<{ file: string; nodes: Node[] }> = [];
  for (const name of files) {
    const file = `templates/${name}`;
    if (!/\.(ya?ml|tpl)$/.test(name)) throw new TemplateError(`${file}: not a .yaml or .tpl template`);
    const template = parseTemplate(readFileSync(join(dir, name), 'utf8'), file);
    for (const [k, v] of template.defines) defines.set(k, v);
    if (!name.startsWith('_')) parsed.push({ file, nodes: template.nodes });
    else if (template.nodes.some((n) => n.kind !== 'text' || n.text.trim() !== '')) throw new TemplateError(`${file}: a _*.tpl file may only define templates`);
  }
  return parsed.map(({ file, nodes }) => {
    const text = evaluate(nodes, { dot: root, root, defines });
    const documents = parseAllDocuments(text).map((doc) => {
      if (doc.errors.length > 0) throw new TemplateError(`${file}: rendered YAML does not parse: ${doc.errors[0].message}\n${text}`);
      return doc.toJS() as Record<string, unknown> | null;
    });
    return { file, text, documents: documents.filter((d): d is Record<string, unknown> => d !== null) };
  });
}

/** Renders one template string with `dot` as both . and $ (for the renderer's own tests). */
export function renderString(source: string, dot: Record<string, unknown>, file = 'inline'): string {
  const { nodes, defines } = parseTemplate(source, file);
  return evaluate(nodes, { dot, root: dot, defines });
}
