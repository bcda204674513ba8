// Keeps V8's young generation at its starting size once the gateway runs.
// V8 doubles the two semi-spaces (towards 16 MiB each) whenever enough objects
// survive its scavenges; relaying 64 streams gets there within seconds, and
// the daemon's RSS grew by 42 MiB. `--max-semi-space-size` would cap it, but
// V8 reads that only at start, and on the command line it costs PID 1 about
// 40 ms of boot. The growth factor is read each time V8 would grow the young
// generation, so setting it to 1 at run time holds the size where it is.
import v8 from 'node:v8';

export const HOLD_YOUNG_GENERATION_FLAG = '--semi-space-growth-factor=1';

let held = false;

/** Stops the young generation from growing from here on (idempotent; process-wide). */
export function holdYoungGeneration(): void {
  if (held) return;
  held = true;
  v8.setFlagsFromString(HOLD_YOUNG_GENERATION_FLAG);
}
