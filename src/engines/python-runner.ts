// What upstream's vLLM and SGLang runners share: the launch runs as a user
// (AUTO_INFER_VLLM_USER / AUTO_INFER_SGLANG_USER, default `me`) through
// runuser, with `$HOME/.pixi/bin:$HOME/.local/bin` in front of PATH and
// PYTHONUNBUFFERED=1 (so the log shows Python's lines as they come). Where the
// user does not exist, or we are not root, upstream ran as the current user
// with a warning; so do we.

/** What the planner may ask about users. */
export interface UserLookup {
  /** The user's home directory from /etc/passwd; null when no such user. */
  home(user: string): string | null;
  /** Their uid and gid (the bundle installer hands its files over); null when no such user. */
  ids?(user: string): { uid: number; gid: number } | null;
  /** Whether the supervisor may switch users at all. */
  isRoot: boolean;
}

export const DEFAULT_RUNNER_USER = 'me';

export interface RunnerIdentity {
  /** null: run as the supervisor's own user. */
  user: string | null;
  env: Record<string, string>;
  envNotes: Record<string, string>;
  warnings: Array<{ path: string[]; message: string }>;
}

/** The user, PATH and Python environment of a vLLM or SGLang launch. */
export function makeRunnerIdentity({
  configured,
  userEnv,
  env,
  users,
}: {
  /** `[instance.*.control] user`: used as given, like for llama-server. */
  configured: string | undefined;
  /** AUTO_INFER_VLLM_USER or AUTO_INFER_SGLANG_USER. */
  userEnv: string;
  env: Readonly<Record<string, string | undefined>>;
  /** Absent: not asked (pure tests); the user is taken to exist at /home/<user>. */
  users: UserLookup | undefined;
}): RunnerIdentity {
  const warnings: RunnerIdentity['warnings'] = [];
  const fromEnv = env[userEnv];
  const wanted = configured ?? (fromEnv !== undefined && fromEnv.trim() !== '' ? fromEnv.trim() : DEFAULT_RUNNER_USER);
  let user: string | null = wanted;
  let home = users === undefined ? `/home/${wanted}` : users.home(wanted);
  if (configured === undefined && users !== undefined && (!users.isRoot || home === null)) {
    const why = users.isRoot ? `user "${wanted}" does not exist` : `the supervisor is not root`;
    warnings.push({ path: ['control', 'user'], message: `${why}: runs as the supervisor's own user instead of "${wanted}" (${userEnv}), as upstream's runner did` });
    user = null;
    home = env.HOME ?? null;
  }
  home ??= `/home/${wanted}`;
  const path = [`${home}/.pixi/bin`, `${home}/.local/bin`, ...(env.PATH ?? '').split(':')].filter((dir) => dir !== '').join(':');
  const out: Record<string, string> = { PATH: path, PYTHONUNBUFFERED: '1' };
  const notes: Record<string, string> = { PATH: "upstream's runner: the user's pixi and ~/.local/bin first", PYTHONUNBUFFERED: "upstream's runner: Python's output reaches the log as it is printed" };
  if (user !== null) {
    out.HOME = home;
    notes.HOME = `the home of ${user}, who runs it`;
  }
  return { user, env: out, envNotes: notes, warnings };
}
