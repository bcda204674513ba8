// Gives the memory of a burst of large request bodies back to the system.
// Bodies arrive in 64 KiB socket buffers that glibc's malloc takes from its
// main heap; once they are freed (only at a garbage collection, which an idle
// daemon may not run for a long time), the heap is fragmented and glibc keeps
// nearly all of it: 100 bodies of 32 MB left the daemon 180 MiB above idle.
// So after a burst: one full collection (gc, exposed at run time, as
// young-generation.ts sets its flag), then malloc_trim(0), which hands every
// free page back, wherever it lies in the heap. Either is skipped where it is
// not available (no koffi, a libc without malloc_trim).
import { createRequire } from 'node:module';
import v8 from 'node:v8';
import vm from 'node:vm';

let collect: (() => void) | null | undefined;
let trim: ((pad: number) => number) | null | undefined;

/** V8 frees the memory of dead buffers on a background thread after the collection; this is ample for it. */
const SWEEP_MS = 250;

/** Collects garbage, then returns free heap pages to the kernel; a few ms of the daemon's time. */
export function returnFreedMemory(): void {
  collect ??= loadCollect();
  trim ??= loadTrim();
  collect?.();
  setTimeout(() => trim?.(0), SWEEP_MS).unref();
}

function loadCollect(): (() => void) | null {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as unknown;
  return typeof gc === 'function' ? (gc as () => void) : null;
}

function loadTrim(): ((pad: number) => number) | null {
  try {
    // createRequire keeps koffi out of the esbuild bundle: it is resolved from node_modules at run time.
    const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
    return koffi.load('libc.so.6').func('int malloc_trim(size_t pad)') as (pad: number) => number;
  } catch {
    return null;
  }
}
