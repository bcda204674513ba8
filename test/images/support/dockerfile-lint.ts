// Our Dockerfile linter: a small rule set in hadolint's spirit (hadolint is not
// packaged for Debian 12), each rule with its id, what it prevents and, where
// there is one, the hadolint rule it mirrors. docker/README.md lists them.
// Parses as Docker does for what the rules need: `\` continuations, comment
// lines (also inside a continuation), instructions case-insensitive. No
// heredocs and no `# escape=` directive: both are reported, not guessed at.

/** One instruction, its arguments joined across continuation lines. */
export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line of the instruction's first line. */
  line: number;
  /** Index of its build stage (the FROMs seen before it, minus one; -1 before the first FROM). */
  stage: number;
}

export interface LintProblem {
  rule: string;
  line: number;
  message: string;
}

const KEYWORDS = new Set(['FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL']);

/** The rules: id → what it checks (the README's table is this list). */
export const RULES: Readonly<Record<string, string>> = Object.freeze({
  DF001: 'known instructions only; no heredocs, no escape directive (the parser would misread them)',
  DF002: 'ENTRYPOINT, CMD and HEALTHCHECK CMD in exec (JSON) form, so signals reach the process (hadolint DL3025)',
  DF003: 'at most one ENTRYPOINT, CMD and HEALTHCHECK per stage: only the last counts (DL4003, DL4004)',
  DF004: 'apt-get install with -y and --no-install-recommends (DL3014, DL3015)',
  DF005: 'a RUN that runs apt-get update or install removes /var/lib/apt/lists in the same RUN (DL3009)',
  DF006: 'COPY, not ADD: ADD fetches URLs unverified and unpacks archives implicitly (DL3020)',
  DF007: 'no sudo in RUN: the build runs as root (DL3004)',
  DF008: 'FROM names a tag, a digest or a build ARG; never an untagged image or :latest (DL3006, DL3007)',
  DF009: 'no secret-looking ARG or ENV (password, secret, token, api key, private key): build args stay in the image history',
  DF010: 'no ssh-keygen in RUN and no key files copied: host keys are made per container at boot',
  DF011: 'curl and wget are bounded (--max-time / --timeout): a build must fail, never hang',
  DF012: 'no download piped into a shell (curl ... | sh): nothing unverified runs',
  DF013: 'WORKDIR is absolute (DL3000)',
  DF014: 'an ARG used in FROM is declared before the first FROM',
});

/** Splits a Dockerfile into instructions. */
export function parseDockerfile(text: string): { instructions: Instruction[]; problems: LintProblem[] } {
  const instructions: Instruction[] = [];
  const problems: LintProblem[] = [];
  const lines = text.split('\n');
  let stage = -1;
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i];
    if (i === 0 && /^#\s*escape\s*=/i.test(first)) problems.push({ rule: 'DF001', line: 1, message: 'the escape directive is not supported by this linter' });
    if (/^\s*(#|$)/.test(first)) continue;
    const start = i;
    let joined = first;
    while (/\\\s*$/.test(joined) && i + 1 < lines.length) {
      joined = joined.replace(/\\\s*$/, ' ');
      i++;
      // Comment lines inside a continuation are dropped, as Docker does.
      if (!/^\s*#/.test(lines[i])) joined += lines[i];
    }
    const match = /^\s*(\S+)\s*(.*)$/.exec(joined);
    if (!match) continue;
    const keyword = match[1].toUpperCase();
    const args = match[2].replace(/\s+/g, ' ').trim();
    if (!KEYWORDS.has(keyword)) problems.push({ rule: 'DF001', line: start + 1, message: `unknown instruction ${match[1]}` });
    if (/<<-?["']?[A-Za-z_]+/.test(args) && (keyword === 'RUN' || keyword === 'COPY')) problems.push({ rule: 'DF001', line: start + 1, message: 'heredocs are not supported by this linter' });
    if (keyword === 'FROM') stage++;
    instructions.push({ keyword, args, line: start + 1, stage });
  }
  return { instructions, problems };
}

const SECRET_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY)/i;
const KEY_FILE = /(^|\/)(id_(rsa|ecdsa|ed25519|dsa)|ssh_host_[^ ]*|[^ ]*\.(pem|key))$/;

/** Every rule over one Dockerfile's text; an empty list means clean. */
export function lintDockerfile(text: string): LintProblem[] {
  const { instructions, problems } = parseDockerfile(text);
  const report = (rule: string, at: Instruction, message: string) => problems.push({ rule, line: at.line, message });
  const globalArgs = new Set<string>();
  const seenPerStage = new Map<string, Instruction>();
  for (const ins of instructions) {
    const { keyword, args } = ins;
    if (keyword === 'ARG' && ins.stage === -1) globalArgs.add(args.split('=')[0].trim());
    if (keyword === 'ARG' || keyword === 'ENV') {
      for (const name of declaredNames(keyword, args)) if (SECRET_NAME.test(name)) report('DF009', ins, `${keyword} ${name} looks like a secret: pass it as a build secret or at run time`);
    }
    if (keyword === 'FROM') checkFrom(ins, globalArgs, report);
    if (keyword === 'ENTRYPOINT' || keyword === 'CMD' || keyword === 'HEALTHCHECK') {
      const form = keyword === 'HEALTHCHECK' ? args.replace(/^(--\S+\s+)*/, '') : args;
      const command = keyword === 'HEALTHCHECK' ? form.replace(/^CMD\s+/i, '') : form;
      if (!(keyword === 'HEALTHCHECK' && /^NONE$/i.test(form)) && !isJsonArray(command)) report('DF002', ins, `${keyword} in shell form: use the exec form ["cmd", "arg"]`);
      const key = `${ins.stage}:${keyword}`;
      if (seenPerStage.has(key)) report('DF003', ins, `a second ${keyword} in this stage (the first is on line ${seenPerStage.get(key)!.line})`);
      seenPerStage.set(key, ins);
    }
    if (keyword === 'ADD') report('DF006', ins, 'ADD: use COPY (and a verified download in RUN)');
    if (keyword === 'WORKDIR' && !/^["']?(\/|\$)/.test(args)) report('DF013', ins, `WORKDIR ${args} is relative`);
    if (keyword === 'COPY' && args.split(' ').filter((w) => !w.startsWith('--')).some((w) => KEY_FILE.test(w))) report('DF010', ins, 'COPY of a key file');
    if (keyword === 'RUN') checkRun(ins, report);
  }
  return problems.sort((a, b) => a.line - b.line);
}

function checkFrom(ins: Instruction, globalArgs: Set<string>, report: (rule: string, at: Instruction, message: string) => void): void {
  const image = ins.args.split(' ').find((w) => !w.startsWith('--')) ?? '';
  const variable = /^\$\{?(\w+)/.exec(image);
  if (variable) {
    if (!globalArgs.has(variable[1])) report('DF014', ins, `FROM uses $${variable[1]}, which no ARG before the first FROM declares`);
    return;
  }
  if (image === 'scratch' || image.includes('@')) return;
  const tag = /:([^/]+)$/.exec(image)?.[1];
  // A name without a tag may be an earlier stage of this file (FROM builder).
  if (tag === 'latest') report('DF008', ins, `FROM ${image}: pin a tag, not :latest`);
  else if (tag === undefined && !/^[a-z][\w.-]*$/.test(image)) report('DF008', ins, `FROM ${image} has no tag`);
}

function checkRun(ins: Instruction, report: (rule: string, at: Instruction, message: string) => void): void {
  // The command, without RUN's own flags (--mount=...).
  const command = ins.args.replace(/^(--\S+\s+)*/, '');
  for (const install of command.match(/apt-get\s+(?:[^;&|]*?\s)?install\b[^;&|]*/g) ?? []) {
    if (!/\s(-y|--yes|-[a-z]*y[a-z]*|--assume-yes)\b/.test(install)) report('DF004', ins, 'apt-get install without -y');
    if (!install.includes('--no-install-recommends')) report('DF004', ins, 'apt-get install without --no-install-recommends');
  }
  if (/apt-get\s+(update|install)\b/.test(command) && !/rm -rf \/var\/lib\/apt\/lists/.test(command)) report('DF005', ins, 'apt-get in a RUN that does not remove /var/lib/apt/lists');
  if (/(^|[;&|]\s*)sudo\s/.test(command)) report('DF007', ins, 'sudo in RUN');
  if (/\bssh-keygen\b/.test(command)) report('DF010', ins, 'ssh-keygen at build time bakes keys into the image');
  // curl or wget in command position (not a package name in an apt-get list).
  for (const [, tool, call] of command.matchAll(/(?:^|[;&|(`]\s*|\b(?:then|do|else)\s+)(curl|wget)(\s[^;&|]*)?/g)) {
    const bounded = tool === 'curl' ? /--max-time|\s-m\s/.test(call ?? '') : /--timeout|\s-T\s/.test(call ?? '');
    if (!bounded) report('DF011', ins, `${tool} without a time limit`);
  }
  if (/(?:^|[;&|(`]\s*|\b(?:then|do|else)\s+)(curl|wget)\s[^;&]*\|\s*(sudo\s+)?(ba|z|da)?sh\b/.test(command)) report('DF012', ins, 'a download piped into a shell');
}

function declaredNames(keyword: string, args: string): string[] {
  // ARG NAME[=default]; ENV NAME=value [NAME=value...] or the old ENV NAME value.
  if (keyword === 'ARG') return [args.split('=')[0].trim()];
  if (!args.includes('=')) return [args.split(' ')[0]];
  return [...args.matchAll(/(?:^|\s)([A-Za-z_]\w*)=/g)].map((m) => m[1]);
}

function isJsonArray(text: string): boolean {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((v) => typeof v === 'string');
  } catch {
    // Not JSON: the shell form.
    return false;
  }
}
