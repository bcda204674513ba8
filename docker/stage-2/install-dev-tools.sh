#!/bin/sh
# install-dev-tools.sh TOOL...: the developer tools of WITH_DEV_TOOLS=1, for `me`:
#   pixi         from its GitHub release (PIXI_URL), into ~/.pixi/bin
#   bun          the npm package `bun`, into ~/.local
#   claude-code  the npm package @anthropic-ai/claude-code (`claude`), into ~/.local
#   codex        the npm package @openai/codex (`codex`), into ~/.local
# npm comes from the builder stage, mounted at /opt/npm for this step only.
# Every download is bounded: a host the build cannot reach fails the build with
# one line that names it and the way out, it never hangs.
set -eu
ME=me
HOME_ME=$(getent passwd "$ME" | cut -d: -f6)
PREFIX=$HOME_ME/.local
REGISTRY=${NPM_REGISTRY:-https://registry.npmjs.org}
ca=
[ -s /run/secrets/ca ] && ca=/run/secrets/ca
[ -z "$ca" ] || export NODE_EXTRA_CA_CERTS="$ca"

fail() {
  echo "install-dev-tools: $1" >&2
  echo "install-dev-tools: build without it: WITH_DEV_TOOLS=0, or DEV_TOOLS=\"...\" without $2" >&2
  exit 1
}

npm_install() { # TOOL PACKAGE
  [ -f /opt/npm/bin/npm-cli.js ] || fail "npm is not mounted at /opt/npm (the Dockerfile mounts it from the node stage)" "$1"
  echo "install-dev-tools: $1 (npm $2)"
  timeout 900 node /opt/npm/bin/npm-cli.js install --global --prefix "$PREFIX" \
    --registry "$REGISTRY" --fetch-timeout 60000 --fetch-retries 2 --no-audit --no-fund --no-update-notifier --loglevel error "$2" \
    || fail "npm could not install $2 from $REGISTRY within 15 minutes" "$1"
}

pixi_install() {
  url=${PIXI_URL:-https://github.com/prefix-dev/pixi/releases/latest/download/pixi-$(uname -m)-unknown-linux-musl.tar.gz}
  echo "install-dev-tools: pixi ($url)"
  tmp=$(mktemp)
  curl -fsSL ${ca:+--cacert "$ca"} --connect-timeout 20 --max-time 300 -o "$tmp" "$url" \
    || { rm -f "$tmp"; fail "cannot download pixi from $url (host $(echo "$url" | cut -d/ -f3) unreachable from this build?)" pixi; }
  install -d -o "$ME" -g "$ME" "$HOME_ME/.pixi" "$HOME_ME/.pixi/bin"
  tar -xzf "$tmp" -C "$HOME_ME/.pixi/bin" pixi
  rm -f "$tmp"
}

for tool in "$@"; do
  case $tool in
    pixi) pixi_install ;;
    bun) npm_install bun bun ;;
    claude-code) npm_install claude-code @anthropic-ai/claude-code ;;
    codex) npm_install codex @openai/codex ;;
    *) echo "install-dev-tools: unknown tool $tool (known: pixi bun claude-code codex)" >&2; exit 2 ;;
  esac
done
# Installed as root (the CA secret is root's); handed to `me`.
[ ! -d "$PREFIX" ] || chown -R "$ME:$ME" "$PREFIX"
[ ! -d "$HOME_ME/.pixi" ] || chown -R "$ME:$ME" "$HOME_ME/.pixi"
rm -rf /root/.npm "$HOME_ME/.npm"
echo "install-dev-tools: done: $*"
