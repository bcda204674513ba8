#!/bin/sh
# prune-node-modules.sh DIR: after `npm prune --omit=dev`, drops what a Linux
# container never loads: koffi's prebuilt modules for other platforms (24 of its
# 28 MB) and its sources, and the READMEs and source maps of every package
# (licences stay).
set -eu
dir=$1
case $(uname -m) in
  x86_64) keep=linux_x64 ;;
  aarch64) keep=linux_arm64 ;;
  *) keep=linux_$(uname -m) ;;
esac
koffi=$dir/node_modules/koffi
if [ -d "$koffi/build/koffi" ]; then
  [ -e "$koffi/build/koffi/$keep/koffi.node" ] || { echo "prune-node-modules: koffi has no prebuilt $keep" >&2; exit 1; }
  find "$koffi/build/koffi" -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} +
  rm -rf "$koffi/src" "$koffi/vendor" "$koffi/doc"
fi
find "$dir/node_modules" -type f \( -name '*.md' -o -name '*.map' \) -delete
# `npm prune` leaves the folders of emptied scopes (@anthropic-ai/) behind.
find "$dir/node_modules" -mindepth 1 -type d -empty -delete
du -sh "$dir/node_modules"
