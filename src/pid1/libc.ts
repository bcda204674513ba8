// The few libc calls PID 1 needs and Node does not offer: waitpid on one pid,
// prctl(PR_SET_CHILD_SUBREAPER), the terminal's foreground group, SIG_IGN, and
// posix_spawn into a new process group (child_process can only setsid, which
// would cut the main process off from the terminal). Bound through koffi, which
// is loaded on first use only, so only `boot` pays for it. Wait statuses are
// decoded here in plain TypeScript.
import { createRequire } from 'node:module';
import { arch, constants } from 'node:os';
import { signalName } from './exit-code.ts';

/** A failed system call, shaped like Node's own errors: `code` is the errno name. */
export class SyscallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;

  constructor(syscall: string, errno: number) {
    const code = errnoName(errno);
    super(`${syscall} failed: ${code}`);
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
  }
}
Object.defineProperty(SyscallError.prototype, 'name', { value: 'SyscallError', enumerable: false });

/** A raw wait status, decoded (the WIFEXITED/WEXITSTATUS/WTERMSIG macros of <sys/wait.h>). */
export interface WaitStatus {
  /** Exit code, when the process exited by itself. */
  code: number | null;
  /** Signal number that killed it. */
  signo: number | null;
  /** Its name (SIGKILL), or SIG<n> when Node has none. */
  signal: string | null;
  coreDumped: boolean;
}

/** Decodes a wait status: exited (low 7 bits zero) or killed (low 7 bits = signal). */
export function decodeWaitStatus(status: number): WaitStatus {
  const termsig = status & 0x7f;
  if (termsig === 0) return { code: (status >> 8) & 0xff, signo: null, signal: null, coreDumped: false };
  // 0x7f is "stopped" (WIFSTOPPED); waitpid only reports it with WUNTRACED, which we never pass.
  if (termsig === 0x7f) throw new RangeError(`wait status ${status} is a stop, not an exit`);
  return { code: null, signo: termsig, signal: signalName(termsig), coreDumped: (status & 0x80) !== 0 };
}

/** What the child of `spawnInNewGroup` gets. */
export interface GroupSpawn {
  file: string;
  argv: readonly string[];
  env: readonly string[];
  /** A terminal fd to make the child's group the foreground group of, before exec. */
  terminalFd: number | null;
}

/** The bound calls. Each throws a SyscallError with a named errno when the call fails. */
export interface Libc {
  getpid(): number;
  getpgrp(): number;
  /** waitpid(pid, &status, WNOHANG): null while the child is still running. */
  waitpidNoHang(pid: number): WaitStatus | null;
  /** prctl(PR_SET_CHILD_SUBREAPER, 1). */
  setChildSubreaper(): void;
  /** prctl(PR_GET_CHILD_SUBREAPER). */
  isChildSubreaper(): boolean;
  tcgetpgrp(fd: number): number;
  tcsetpgrp(fd: number, pgrp: number): void;
  /** signal(signo, SIG_IGN): a real ignore, which process.on() cannot set. */
  ignoreSignal(signo: number): void;
  /** posix_spawnp as the leader of a new process group, with default signals and an empty mask. */
  spawnInNewGroup(spawn: GroupSpawn): { pid: number; terminalHandedOver: boolean };
}

const WNOHANG = 1;
const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;
const SIG_IGN = 1;
const POSIX_SPAWN_SETPGROUP = 0x02;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
// Opaque libc types, allocated larger than any libc needs (glibc x86_64: 336, 80 and 128 bytes).
const SPAWNATTR_BYTES = 1024;
const FILE_ACTIONS_BYTES = 512;
const SIGSET_BYTES = 256;

let loaded: Libc | null = null;

/** The libc bindings, loading koffi and libc on the first call. */
export function loadLibc(): Libc {
  loaded ??= bindLibc();
  return loaded;
}

function bindLibc(): Libc {
  // createRequire keeps koffi out of the esbuild bundle: it is resolved from node_modules at run time.
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = openLibc(koffi);
  const fn = (proto: string) => lib.func(proto);
  const optionalFn = (proto: string) => {
    try {
      return lib.func(proto);
    } catch (err) {
      // Older glibc lacks the *_np spawn extras; we do without them.
      if (err instanceof Error && err.message.startsWith('Cannot find function')) return null;
      throw err;
    }
  };
  const c = {
    getpid: fn('int getpid(void)'),
    getpgrp: fn('int getpgrp(void)'),
    waitpid: fn('int waitpid(int pid, _Out_ int *status, int options)'),
    prctl: fn('int prctl(int option, ...)'),
    tcgetpgrp: fn('int tcgetpgrp(int fd)'),
    tcsetpgrp: fn('int tcsetpgrp(int fd, int pgrp)'),
    signal: fn('intptr_t signal(int signo, intptr_t handler)'),
    sigemptyset: fn('int sigemptyset(void *set)'),
    sigfillset: fn('int sigfillset(void *set)'),
    attrInit: fn('int posix_spawnattr_init(void *attr)'),
    attrDestroy: fn('int posix_spawnattr_destroy(void *attr)'),
    attrSetflags: fn('int posix_spawnattr_setflags(void *attr, short flags)'),
    attrSetpgroup: fn('int posix_spawnattr_setpgroup(void *attr, int pgroup)'),
    attrSetsigdefault: fn('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
    attrSetsigmask: fn('int posix_spawnattr_setsigmask(void *attr, void *set)'),
    actionsInit: fn('int posix_spawn_file_actions_init(void *actions)'),
    actionsDestroy: fn('int posix_spawn_file_actions_destroy(void *actions)'),
    actionsDup2: fn('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
    // glibc 2.34 and 2.35; without them fds >= 3 rely on CLOEXEC and the parent hands over the terminal.
    actionsClosefrom: optionalFn('int posix_spawn_file_actions_addclosefrom_np(void *actions, int from)'),
    actionsTcsetpgrp: optionalFn('int posix_spawn_file_actions_addtcsetpgrp_np(void *actions, int fd)'),
    spawnp: fn('int posix_spawnp(_Out_ int *pid, const char *file, void *actions, void *attr, const char **argv, const char **envp)'),
  };
  // -1 and errno for the classic calls; posix_spawn* return the errno number instead.
  const check = (syscall: string, result: number): number => {
    if (result === -1) throw new SyscallError(syscall, koffi.errno());
    return result;
  };
  const checkReturned = (syscall: string, result: number): void => {
    if (result !== 0) throw new SyscallError(syscall, result);
  };

  return {
    getpid: () => c.getpid(),
    getpgrp: () => c.getpgrp(),
    waitpidNoHang(pid) {
      const status = [0];
      const got = check('waitpid', c.waitpid(pid, status, WNOHANG));
      return got === 0 ? null : decodeWaitStatus(status[0] as number);
    },
    setChildSubreaper() {
      check('prctl', c.prctl(PR_SET_CHILD_SUBREAPER, 'unsigned long', 1, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0));
    },
    isChildSubreaper() {
      const out = Buffer.alloc(4);
      check('prctl', c.prctl(PR_GET_CHILD_SUBREAPER, 'void *', out, 'unsigned long', 0, 'unsigned long', 0, 'unsigned long', 0));
      return out.readInt32LE(0) !== 0;
    },
    tcgetpgrp: (fd) => check('tcgetpgrp', c.tcgetpgrp(fd)),
    tcsetpgrp(fd, pgrp) {
      check('tcsetpgrp', c.tcsetpgrp(fd, pgrp));
    },
    ignoreSignal(signo) {
      // SIG_ERR is -1.
      check('signal', Number(c.signal(signo, SIG_IGN)));
    },
    spawnInNewGroup({ file, argv, env, terminalFd }) {
      const attr = Buffer.alloc(SPAWNATTR_BYTES);
      const actions = Buffer.alloc(FILE_ACTIONS_BYTES);
      const allSignals = Buffer.alloc(SIGSET_BYTES);
      const noSignals = Buffer.alloc(SIGSET_BYTES);
      checkReturned('posix_spawnattr_init', c.attrInit(attr));
      checkReturned('posix_spawn_file_actions_init', c.actionsInit(actions));
      try {
        c.sigfillset(allSignals);
        c.sigemptyset(noSignals);
        // Node ignores SIGPIPE and may hold a signal mask: the program gets the defaults, as after a shell's fork.
        checkReturned('posix_spawnattr_setflags', c.attrSetflags(attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK));
        checkReturned('posix_spawnattr_setpgroup', c.attrSetpgroup(attr, 0));
        checkReturned('posix_spawnattr_setsigdefault', c.attrSetsigdefault(attr, allSignals));
        checkReturned('posix_spawnattr_setsigmask', c.attrSetsigmask(attr, noSignals));
        // Node marks fds 0-2 close-on-exec; dup2 onto itself clears the flag in the child (POSIX 2017).
        for (const fd of [0, 1, 2]) checkReturned('posix_spawn_file_actions_adddup2', c.actionsDup2(actions, fd, fd));
        if (c.actionsClosefrom) checkReturned('posix_spawn_file_actions_addclosefrom_np', c.actionsClosefrom(actions, 3));
        // The child takes the terminal itself, before exec, with every signal still blocked (no SIGTTOU).
        const handOver = terminalFd !== null && c.actionsTcsetpgrp !== null;
        if (handOver) checkReturned('posix_spawn_file_actions_addtcsetpgrp_np', c.actionsTcsetpgrp!(actions, terminalFd));
        const pid = [0];
        checkReturned('posix_spawnp', c.spawnp(pid, file, actions, attr, [...argv, null], [...env, null]));
        return { pid: pid[0] as number, terminalHandedOver: handOver };
      } finally {
        c.actionsDestroy(actions);
        c.attrDestroy(attr);
      }
    },
  };
}

/** glibc's libc.so.6, else musl's. */
function openLibc(koffi: typeof import('koffi')): ReturnType<typeof koffi.load> {
  const candidates = ['libc.so.6', `libc.musl-${MUSL_ARCH[arch()] ?? arch()}.so.1`];
  const failures: string[] = [];
  for (const name of candidates) {
    try {
      return koffi.load(name);
    } catch (err) {
      failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new Error(`cannot load the C library for the PID 1 duties (${failures.join('; ')})`);
}

const MUSL_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };

// Aliases share a number (EWOULDBLOCK = EAGAIN): the first name listed wins.
const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno)
    .reverse()
    .map(([name, n]) => [n, name]),
);

/** ECHILD for 10, and so on; E<n> for numbers Node has no name for. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}
