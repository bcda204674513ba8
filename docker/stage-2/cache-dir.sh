#!/bin/sh
# Stage-2 every-run hook: XDG_CACHE_HOME (the image sets /soft/workspace/.cache,
# under the workspace, so caches land on the mounted volume when there is one)
# exists and belongs to `me` when we make it. An existing one is left as it is:
# no chmod -R of a host volume.
set -eu
dir=${XDG_CACHE_HOME:-}
[ -n "$dir" ] || exit 0
[ -d "$dir" ] && exit 0
mkdir -p "$dir"
if getent passwd me >/dev/null; then chown me:me "$dir"; fi
echo "cache-dir: made $dir"
