// Reads an instance's log file for `supervisor logs`: the last N lines, and
// new lines as they are written (across rotations).
import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

const FOLLOW_POLL_MS = 250;
const READ_BLOCK = 64 * 1024;

/** The last `count` lines of a file, reading backwards from the end. */
export async function readLastLines(file: string, count: number): Promise<string[]> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    let position = size;
    let text = '';
    while (position > 0 && text.split('\n').length <= count + 1) {
      const length = Math.min(READ_BLOCK, position);
      position -= length;
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, position);
      text = buffer.toString('utf8') + text;
    }
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.slice(-count);
  } finally {
    await handle.close();
  }
}

/** Yields text appended to `file` from its current end until `signal` aborts; a rotation restarts at the new file. */
export async function* followLog(file: string, signal: AbortSignal): AsyncGenerator<string> {
  let { ino, size: offset } = await statOrEmpty(file);
  while (!signal.aborted) {
    await sleep(FOLLOW_POLL_MS, undefined, { signal }).catch((err: Error) => {
      if (err.name !== 'AbortError') throw err;
    });
    if (signal.aborted) return;
    const now = await statOrEmpty(file);
    if (now.ino !== ino || now.size < offset) {
      ino = now.ino;
      offset = 0;
    }
    if (now.size <= offset) continue;
    const handle = await open(file, 'r');
    try {
      const length = now.size - offset;
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, offset);
      offset = now.size;
      yield buffer.toString('utf8');
    } finally {
      await handle.close();
    }
  }
}

async function statOrEmpty(file: string): Promise<{ ino: number; size: number }> {
  try {
    const s = await stat(file);
    return { ino: s.ino, size: s.size };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ino: 0, size: 0 };
    throw err;
  }
}
