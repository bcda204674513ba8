// Temp trees for boot tests: every root boot touches lives under one temp dir.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { BootLog, BootLogLevel } from '../../src/boot/boot-log.ts';

/** A collected log line. */
export interface LogLine {
  level: BootLogLevel;
  message: string;
  fields: Record<string, unknown>;
}

/** A BootLog that keeps every line, plus a text view for assertions. */
export function makeCollectingLog(): { log: BootLog; lines: LogLine[]; text: () => string } {
  const lines: LogLine[] = [];
  const log: BootLog = (level, message, fields = {}) => lines.push({ level, message, fields });
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
