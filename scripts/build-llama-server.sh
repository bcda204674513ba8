#!/usr/bin/env bash
# Builds a CPU llama-server (and llama.cpp's rpc-server, for RPC workers) from the llama.cpp source shipped inside the npm
# package node-llama-cpp (a git bundle), once, into a cache keyed by the source
# commit. Prints the cached bin/ directory on stdout. Nothing but the npm
# registry is contacted.
set -euo pipefail

PKG_VERSION="${NODE_LLAMA_CPP_VERSION:-3.21.1}"
CACHE="${INFER_DEV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infer-dev}"
SRC="$CACHE/src"
mkdir -p "$SRC"

log() { echo "[build-llama-server] $*" >&2; }

tarball="$SRC/node-llama-cpp-$PKG_VERSION.tgz"
if [[ ! -s "$tarball" ]]; then
  log "fetching node-llama-cpp@$PKG_VERSION tarball from the npm registry"
  tmp="$(mktemp -d "$SRC/.pack.XXXXXX")"
  (cd "$tmp" && npm pack --silent "node-llama-cpp@$PKG_VERSION" >/dev/null)
  mv "$tmp/node-llama-cpp-$PKG_VERSION.tgz" "$tarball"
  rmdir "$tmp"
fi

bundle="$SRC/llama-$PKG_VERSION.bundle"
if [[ ! -s "$bundle" ]]; then
  tar -xzf "$tarball" -O package/llama/gitRelease.bundle > "$bundle.tmp"
  mv "$bundle.tmp" "$bundle"
fi

commit="$(git bundle list-heads "$bundle" | awk 'NR==1{print substr($1,1,12)}')"
out="$CACHE/llama-server/$commit"
# rpc-server came later than llama-server: a cache without it is rebuilt
# (incrementally, in the kept build dir) rather than trusted.
if [[ -x "$out/bin/llama-server" && -x "$out/bin/rpc-server" ]]; then
  echo "$out/bin"
  exit 0
fi

work="$CACHE/build/$commit"
if [[ ! -d "$work/.git" ]]; then
  rm -rf "$work"
  git clone --quiet "$bundle" "$work"
fi
# llama.cpp renamed the target (and its binary) rpc-server -> ggml-rpc-server;
# build whichever this source has, and publish it as bin/rpc-server too.
rpc_target=rpc-server
grep -q 'ggml-rpc-server' "$work/tools/rpc/CMakeLists.txt" 2>/dev/null && rpc_target=ggml-rpc-server
log "building llama-server and $rpc_target $commit in $work (about 9 minutes on 2 cores)"
cmake -S "$work" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_RPATH_USE_ORIGIN=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_RPC=ON ${LLAMA_CMAKE_EXTRA:-} >&2
cmake --build "$work/build" --target llama-server "$rpc_target" -j"$(nproc)" >&2

# Publish atomically: copy bin/ (symlinks kept) into a temp dir, then rename.
stage="$(mktemp -d "$CACHE/llama-server/.stage.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE/llama-server"; mktemp -d "$CACHE/llama-server/.stage.XXXXXX"; })"
cp -a "$work/build/bin" "$stage/bin"
[[ -e "$stage/bin/rpc-server" ]] || ln -s "$rpc_target" "$stage/bin/rpc-server"
rm -rf "$out"
mv "$stage" "$out"
"$out/bin/llama-server" --version >&2 || true
echo "$out/bin"
