#!/usr/bin/env bash
# Runs the infer-dev stage-2 image without compose (upstream's run-merged.sh and
# start-docker-with-auto-inference.sh in one), with docker or podman (ENGINE).
#
#   docker/run.sh [OPTIONS] [-- ENGINE-RUN-ARGS...]
#
#   --llama-pkg FILE     a llama.cpp bundle (.tar.gz/.tgz/.tar/.zip): mounted read-only, installed at boot
#   --llama-config FILE  a TOML config: mounted read-only, served at boot (auto-serve on)
#   --model-dir DIR      one model folder, read-only at /llm-models/<its name>
#   --port N             host port for llama-server's 8080 (default 11980)
#   --ssh-port N         host port for sshd (default 2222)
#   --gateway-port N     host port for the gateway (default 11899)
#   --bind ADDR          host address of the published ports (default: all; 127.0.0.1 keeps them local)
#   --gpus all|none|LIST GPUs (default: all when nvidia-smi is found here, else none); LIST like 0,1
#   --ssh-key FILE       a public key for `me` (default: $SSH_AUTHORIZED_KEYS when set)
#   --shell              interactive: boot, then bash on this terminal; the container ends (and is removed) with it
#   --name NAME          container name (default infer-dev)
#   --image IMAGE        (default infer-dev:stage-2)
#   --dry-run            print the command instead of running it
# Arguments after `--` go to `ENGINE run` before the image (e.g. -e VAR=1, -v A:B).
set -euo pipefail

ENGINE=${ENGINE:-docker}
image=infer-dev:stage-2 name=infer-dev port=11980 ssh_port=2222 gateway_port=11899 bind=""
gpus=auto pkg="" config="" model_dir="" ssh_key="" shell=0 dry=0
extra=()

fail() { echo "run.sh: $*" >&2; exit 2; }
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then fail "$1 needs a value"; fi; }
port_ok() { if ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then fail "$1 must be a port (1-65535), not '$2'"; fi; }

while [ $# -gt 0 ]; do
  case $1 in
    --llama-pkg) need "$@"; pkg=$2; shift 2 ;;
    --llama-config) need "$@"; config=$2; shift 2 ;;
    --model-dir) need "$@"; model_dir=$2; shift 2 ;;
    --port) need "$@"; port_ok "$1" "$2"; port=$2; shift 2 ;;
    --ssh-port) need "$@"; port_ok "$1" "$2"; ssh_port=$2; shift 2 ;;
    --gateway-port) need "$@"; port_ok "$1" "$2"; gateway_port=$2; shift 2 ;;
    --bind) need "$@"; bind=$2; shift 2 ;;
    --gpus) need "$@"; gpus=$2; shift 2 ;;
    --ssh-key) need "$@"; ssh_key=$2; shift 2 ;;
    --shell) shell=1; shift ;;
    --name) need "$@"; name=$2; shift 2 ;;
    --image) need "$@"; image=$2; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown option $1 (see --help)" ;;
  esac
done
case $ENGINE in docker | podman) ;; *) fail "ENGINE must be docker or podman, not '$ENGINE'" ;; esac

abs() { # an existing file or folder, as an absolute path
  [ -e "$2" ] || fail "$1 $2: no such file or folder"
  if [ -d "$2" ]; then (cd "$2" && pwd); else echo "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; fi
}

cmd=("$ENGINE" run --name "$name" --hostname infer-dev)
if [ $shell = 1 ]; then cmd+=(-it --rm); else cmd+=(-d); fi
at=${bind:+$bind:}
cmd+=(-p "$at$ssh_port:22" -p "$at$port:8080" -p "$at$gateway_port:11899")

[ "$gpus" != auto ] || { command -v nvidia-smi >/dev/null && gpus=all || gpus=none; }
case $gpus in
  none) ;;
  all | [0-9]*)
    [ "$gpus" = all ] || [[ $gpus =~ ^[0-9]+(,[0-9]+)*$ ]] || fail "--gpus must be all, none or a list like 0,1, not '$gpus'"
    if [ "$ENGINE" = docker ]; then
      if [ "$gpus" = all ]; then cmd+=(--gpus all); else cmd+=(--gpus "\"device=$gpus\""); fi
    else
      # podman: the NVIDIA container toolkit's CDI names (nvidia-ctk cdi generate).
      IFS=, read -r -a ids <<<"$gpus"
      for id in "${ids[@]}"; do cmd+=(--device "nvidia.com/gpu=$id"); done
    fi
    ;;
  *) fail "--gpus must be all, none or a list like 0,1, not '$gpus'" ;;
esac

if [ -n "$pkg" ]; then
  pkg=$(abs --llama-pkg "$pkg")
  cmd+=(-v "$pkg:/tmp/$(basename "$pkg"):ro" -e AUTO_INFER_LLAMA_CPP_GET_PKG_ON_BOOT=1 -e "AUTO_INFER_LLAMA_CPP_PKG_PATH=/tmp/$(basename "$pkg")")
fi
if [ -n "$config" ]; then
  config=$(abs --llama-config "$config")
  cmd+=(-v "$config:/tmp/$(basename "$config"):ro" -e AUTO_INFER_LLAMA_CPP_ON_BOOT=1 -e "AUTO_INFER_LLAMA_CPP_CONFIG=/tmp/$(basename "$config")")
fi
if [ -n "$model_dir" ]; then
  model_dir=$(abs --model-dir "$model_dir")
  cmd+=(-v "$model_dir:/llm-models/$(basename "$model_dir"):ro")
fi
keys=${SSH_AUTHORIZED_KEYS:-}
if [ -n "$ssh_key" ]; then keys=$(cat "$(abs --ssh-key "$ssh_key")"); fi
[ -z "$keys" ] || cmd+=(-e "SSH_AUTHORIZED_KEYS=$keys")
cmd+=("${extra[@]}" "$image")
[ $shell = 0 ] || cmd+=(bash -l)

if [ $dry = 1 ]; then
  printf '%q ' "${cmd[@]}" | sed 's/ $//'
  echo
  exit 0
fi
exec "${cmd[@]}"
