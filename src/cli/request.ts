// The CLI's one way to talk to the daemon: a request on the control socket.
import { sendRequest } from '../control/client.ts';
import { getSocketPath } from '../control/socket-path.ts';

/** Sends one command to the running daemon. */
export function request(cmd: string, args: Record<string, unknown> = {}, timeoutMs?: number): Promise<unknown> {
  return sendRequest({ path: getSocketPath(), cmd, args, timeoutMs });
}

/** Prints a value as one JSON document. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
