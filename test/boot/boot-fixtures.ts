// Temp trees for boot tests: every root boot touches lives under one temp dir.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Log } from '../../src/logging/log.ts';

/** A collected log line. */
export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  fields: Record<string, unknown>;
}

/** A Log that keeps every line, plus a text view for assertions. */
export function makeCollectingLog(): { log: Log; lines: LogLine[]; text: () => string } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (fields: object, message: string) => void lines.push({ level, message, fields: fields as Record<string, unknown> });
  const log: Log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  return { log, lines, text: () => lines.map((l) => `${l.level} ${l.message}`).join('\n') };
}

/** Makes a temp dir; call the returned cleanup in afterEach. */
export async function makeTempRoot(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `boot-${prefix}-`));
}

/** Removes a temp root. */
export async function removeTempRoot(root: string): Promise<void> {
  await rm(root, { recursive: true, force: true });
}

/** Writes a file (parents made), executable unless mode says otherwise. */
export async function writeScript(path: string, body: string, mode = 0o755): Promise<string> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, body);
  await chmod(path, mode);
  return path;
}

/** A hook that appends its name to `<logFile>` and then runs `tail` (sh code). */
export function makeHookBody(logFile: string, name: string, tail = 'exit 0'): string {
  return `#!/bin/sh\necho ${name} >> '${logFile}'\n${tail}\n`;
}
