#!/usr/bin/env bash
# Runs the gateway benchmarks where production runs: llama-server built with
# CUDA and the tiny model offloaded to the GPU, so the host CPUs are left to
# the client and the gateway. Then the same on the CPU of that machine, for
# comparison. Needs node on PATH, dist/ built, nvcc and a llama.cpp source
# tree (the one scripts/build-llama-server.sh clones from node-llama-cpp).
#
#   bench/gpu-gateway.sh LLAMA_SRC [BUILD_DIR]
set -euo pipefail
src="${1:?usage: bench/gpu-gateway.sh LLAMA_SRC [BUILD_DIR]}"
build="${2:-$src/build-cuda}"
cd "$(dirname "$0")/.."

if [[ ! -x "$build/bin/llama-server" ]]; then
  # Hopper only, no FlashAttention kernels, no NCCL: a few minutes instead of half an hour.
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF >&2
  cmake --build "$build" --target llama-server -j"$(nproc)" >&2
fi
export LLAMA_SERVER_BIN_DIR="$build/bin"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
echo "## inference on the GPU"
BENCH_GPU_LAYERS=99 node bench/run.mjs gateway-latency gateway-throughput
echo "## inference on the CPU of the same machine"
BENCH_GPU_LAYERS=0 node bench/run.mjs gateway-throughput
