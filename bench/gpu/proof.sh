#!/usr/bin/env bash
# Issue 18's proof on a GPU machine, in one command: build llama-server with CUDA
# from LLAMA_SRC, install it as a bundle with our installer, generate the models,
# then run bench/gpu/proof.mjs with the real supervisor. Needs node on PATH and
# dist/ built. Writes its findings to OUT_DIR.
#   bench/gpu/proof.sh LLAMA_SRC OUT_DIR
set -euo pipefail
src=$1; out=$2
cd "$(dirname "$0")/../.."
mkdir -p "$out"
build=/tmp/llama-cuda
if [[ ! -x $build/bin/llama-server ]]; then
  cmake -S "$src" -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF >/tmp/cmake.log 2>&1 || { tail -20 /tmp/cmake.log; exit 1; }
  cmake --build $build --target llama-server -j"$(nproc)" >/tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
fi
# The bundle: bin/ with llama-server and its libraries, installed as users install one.
pkg=/tmp/llama-cuda-pkg
rm -rf $pkg && mkdir -p $pkg && cp -a $build/bin $pkg/bin
tar -czf /tmp/llama-cuda.tar.gz -C $pkg .
export SUPERVISOR_SOFT_APP=/tmp/gpu-soft/app
node dist/cli.js install-pkg /tmp/llama-cuda.tar.gz | tail -2
[[ -s /tmp/big.gguf ]] || PYTHONPATH="$src/gguf-py" python3 bench/gpu/make-model.py /tmp/big.gguf
node dist/tiny-model.js /tmp/tiny.gguf
node bench/gpu/proof.mjs "$SUPERVISOR_SOFT_APP" /tmp/big.gguf /tmp/tiny.gguf $build/bin/llama-server "$out"
