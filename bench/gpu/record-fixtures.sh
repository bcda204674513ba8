#!/usr/bin/env bash
# Records, on a GPU machine, the facts our GPU code is unit-tested on: nvidia-smi's
# CSV answers (idle, with loads, the processes, -L) and llama-server's load logs at
# verbosity 4 for a load that fits, one whose context fit reduced, and one whose
# layers fit moved to the CPU. Builds llama-server with CUDA from LLAMA_SRC first.
#   usage: bench/gpu/record-fixtures.sh LLAMA_SRC OUT_DIR
set -uo pipefail
src=$1; out=$2; mkdir -p "$out"
t0=$SECONDS
log() { echo "[record +$((SECONDS - t0))s] $*"; }

build=/tmp/llama-cuda
if [ ! -x "$build/bin/llama-server" ]; then
  log "building llama-server with CUDA"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF >/tmp/cmake.log 2>&1 || { tail -20 /tmp/cmake.log; exit 1; }
  cmake --build "$build" --target llama-server -j"$(nproc)" >/tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
fi
server=$build/bin/llama-server
log "built: $("$server" --version 2>&1 | grep -m1 version)"

model=/tmp/big.gguf
[ -s $model ] || PYTHONPATH="$src/gguf-py" python3 "$(dirname "$0")/make-model.py" $model || exit 1
log "model: $(du -h $model | cut -f1)"

smi() { nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,pci.bus_id --format=csv,noheader,nounits; }
apps() { nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits; }
smi > "$out/nvidia-smi-idle.csv"; nvidia-smi -L > "$out/nvidia-smi-L.txt"; apps > "$out/apps-idle.csv"

waithealth() { for i in $(seq 1 600); do curl -sf "localhost:$1/health" >/dev/null && return 0; kill -0 "$2" 2>/dev/null || return 1; sleep 0.1; done; return 1; }
start() { # name port [args...]
  local name=$1 port=$2; shift 2
  local s=$SECONDS
  LLAMA_ARG_LOG_VERBOSITY=4 "$server" -m $model --port "$port" "$@" > "$out/$name.log" 2>&1 &
  local pid=$!
  if waithealth "$port" $pid; then log "$name (pid $pid) ready after $((SECONDS - s)) s"; else log "$name (pid $pid) did not become ready"; fi
  eval "${name//-/_}_pid=$pid"
}
start fitted 18101
smi > "$out/nvidia-smi-one.csv"; apps > "$out/apps-one.csv"
start context-reduced 18102
smi > "$out/nvidia-smi-two.csv"; apps > "$out/apps-two.csv"
start layers-moved 18103 -c 8192
smi > "$out/nvidia-smi-three.csv"; apps > "$out/apps-three.csv"
ls -l /proc/$fitted_pid/fd 2>/dev/null | grep -c nvidia > "$out/fitted-nvidia-fds.txt"
ls -l /proc/$fitted_pid/fd 2>/dev/null | grep nvidia | head -5 >> "$out/fitted-nvidia-fds.txt"
# Release timing: kill -9 the fitted server, then poll memory every 50 ms.
before=$(smi | cut -d, -f5)
kill -9 $fitted_pid; k=$(date +%s%N)
for i in $(seq 1 100); do
  used=$(smi | cut -d, -f5); echo "$(( ($(date +%s%N) - k) / 1000000 )) ms: used $used MiB (before $before)" >> "$out/release.txt"
  [ "$used" -lt $((before - 50000)) ] && break; sleep 0.05
done
kill $context_reduced_pid $layers_moved_pid 2>/dev/null; wait 2>/dev/null
smi > "$out/nvidia-smi-after.csv"
log "done"
