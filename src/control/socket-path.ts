// Where the daemon listens and the CLI connects. One fixed path (not per pid),
// so `docker exec <container> supervisor status` finds the daemon without help.

/** The control socket's path when SUPERVISOR_SOCKET is not set. */
export const DEFAULT_SOCKET_PATH = '/run/infer-dev/supervisor.sock';

/** Picks the control socket path: SUPERVISOR_SOCKET if set and non-empty (tests, a second daemon), else the default. */
export function getSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.SUPERVISOR_SOCKET;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : DEFAULT_SOCKET_PATH;
}
