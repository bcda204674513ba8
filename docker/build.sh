#!/usr/bin/env bash
# Builds infer-dev's two images: Dockerfile.stage1 (system layer) then
# Dockerfile.stage2 (supervisor, layout, dev tools) on top. Prints the stage-2
# image name last.
#
#   docker/build.sh [EXTRA BUILD ARGS...]     e.g. --build-arg APT_MIRROR=http://mirror/ubuntu
#
# Environment:
#   ENGINE           docker (default) or podman
#   BASE_IMAGE       stage-1's base (default: Dockerfile.stage1's, nvidia/cuda:…-cudnn-devel-ubuntu24.04)
#   WITH_DEV_TOOLS   1 (default): Pixi, Bun, Claude Code, Codex for `me`; 0: none
#   TAG              image name (default infer-dev): TAG:stage-1 and TAG:stage-2
#   BUILD_CA_FILE    a CA bundle for HTTPS inside build steps (a TLS-intercepting proxy),
#                    passed as the build secret `ca`; default: the file NODE_EXTRA_CA_CERTS names
# Extra arguments go to both builds.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-docker}
TAG=${TAG:-infer-dev}
WITH_DEV_TOOLS=${WITH_DEV_TOOLS:-1}
CA_FILE=${BUILD_CA_FILE:-${NODE_EXTRA_CA_CERTS:-}}

fail() { echo "build.sh: $*" >&2; exit 1; }
case $ENGINE in docker | podman) ;; *) fail "ENGINE must be docker or podman, not '$ENGINE'" ;; esac
command -v "$ENGINE" >/dev/null || fail "$ENGINE is not installed"
case $WITH_DEV_TOOLS in 0 | 1) ;; *) fail "WITH_DEV_TOOLS must be 0 or 1, not '$WITH_DEV_TOOLS'" ;; esac

common=()
if [ "$ENGINE" = podman ]; then
  # podman's default OCI format drops HEALTHCHECK; docker format keeps it.
  common+=(--format docker)
else
  # --secret and RUN --mount need BuildKit.
  export DOCKER_BUILDKIT=1
fi
if [ -n "$CA_FILE" ]; then
  [ -r "$CA_FILE" ] || fail "the CA bundle $CA_FILE (BUILD_CA_FILE or NODE_EXTRA_CA_CERTS) cannot be read"
  common+=(--secret "id=ca,src=$CA_FILE")
fi

stage1=()
[ -z "${BASE_IMAGE:-}" ] || stage1+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")

started=$SECONDS
echo "build.sh: $TAG:stage-1 (base ${BASE_IMAGE:-as in Dockerfile.stage1}) with $ENGINE" >&2
"$ENGINE" build "${common[@]}" "${stage1[@]}" "$@" -f Dockerfile.stage1 -t "$TAG:stage-1" . >&2 \
  || fail "building $TAG:stage-1 failed (see the output above)"
echo "build.sh: $TAG:stage-2 (WITH_DEV_TOOLS=$WITH_DEV_TOOLS)" >&2
"$ENGINE" build "${common[@]}" --build-arg "STAGE1_IMAGE=$TAG:stage-1" --build-arg "WITH_DEV_TOOLS=$WITH_DEV_TOOLS" "$@" \
  -f Dockerfile.stage2 -t "$TAG:stage-2" . >&2 \
  || fail "building $TAG:stage-2 failed (see the output above)"
echo "build.sh: both images in $((SECONDS - started)) s" >&2
echo "$TAG:stage-2"
