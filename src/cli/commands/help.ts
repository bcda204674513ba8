// supervisor help
import { EXIT } from '../../errors.ts';

const HELP = `usage: supervisor <command> [options]

Daemon
  boot [-- CMD ARGS...]          the container's PID 1: hooks, /soft links, sshd, bundle,
                                 auto-serve, then CMD (or run until stopped)
  run [--config FILE]            run the supervisor in the foreground
                                 (config: --config or AUTO_INFER_LLAMA_CPP_CONFIG)
Control (talks to the daemon on $SUPERVISOR_SOCKET, default /run/infer-dev/supervisor.sock)
  status [NAME...] [--json]      instances: state, pid, uptime, restarts, last exit
  gpus [--json]                  each GPU: used/total and what each instance holds there
  start|stop|restart NAME...|--all
  load NAME... | unload NAME...|--all
                                 models on demand: load (making room by memory), unload to idle
  reload                         re-read the config; restart only what changed
  serve [--config FILE]          start the config's instances that are not running
    [--engine vllm|sglang]       ... of upstream's vLLM/SGLang runner file
                                 (default AUTO_INFER_VLLM_CONFIG / _SGLANG_CONFIG)
  logs NAME [-n N] [-f]          last N lines of an instance's log; -f follows
  health [--strict|--live|--ready] [--json]
                                 for HEALTHCHECK: exit 0 healthy (ready, loading or stopped
                                 on purpose), 1 fatal/backoff/failing or no daemon;
                                 --strict: 0 all ready, 1 failed or stopped, 2 starting, 3 no daemon;
                                 --live: 0 the daemon answers, else 1 (Kubernetes liveness);
                                 --ready: 0 the gateway listens with an instance ready or idle
                                 on demand, else 1 (Kubernetes readiness)
Bundle
  install-pkg [ARCHIVE] [--force] [--no-verify] [--restart] [--json]
                                 install a llama.cpp bundle (.tar, .tar.gz, .tgz, .zip)
  install-pkg --rollback [--restart]
                                 switch back to the previous installed version
  install-engine vllm|sglang [BUNDLE] [--json]
                                 install upstream's vLLM/SGLang offline bundle
                                 (default AUTO_INFER_VLLM_BUNDLE_PATH / _SGLANG_BUNDLE_PATH)
Gateway
  claude-env [--model NAME]      exports for Claude Code: eval "$(supervisor claude-env)"
Config
  config check [FILE] [--json]   errors and warnings; exit 0 or 2
  config print [FILE] [--json]   the resolved launch plan
    [--engine vllm|sglang]       the file is upstream's vLLM or SGLang runner config
  config schema                  the JSON Schema of the TOML file
  version

Exit codes: 0 ok, 1 failed, 2 usage or config error, 3 daemon not running.
`;

export default async function help(): Promise<number> {
  process.stdout.write(HELP);
  return EXIT.OK;
}
