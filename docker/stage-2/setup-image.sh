#!/bin/sh
# The stage-2 layout, run once at build time after the supervisor is copied to
# /opt/infer-dev:
# - `supervisor` on PATH (the ENTRYPOINT);
# - upstream's /hard/{image,volume} and /soft: /soft/{app,data,workspace} are
#   linked at boot to /hard/volume/<name> when mounted, else /hard/image/<name>;
# - the hook folders (stage-1 made its own) and our every-run hook that makes
#   the cache directory;
# - the image's environment for SSH logins, which do not inherit PID 1's:
#   XDG_CACHE_HOME and friends in /etc/environment (PAM), PATH and the CUDA
#   variables in /etc/profile.d (login shells).
set -eu
S=/usr/local/share/infer-dev/stage-2
ln -sf /opt/infer-dev/dist/cli.js /usr/local/bin/supervisor
supervisor version

install -d -m 0755 /hard /hard/image /hard/image/app /hard/volume /soft
install -d -m 0755 -o me -g me /hard/image/data /hard/image/workspace
for kind in on-first-run on-every-run; do install -d -m 0755 "/etc/infer-dev/hooks/stage-2/$kind.d"; done
install -m 0755 "$S/cache-dir.sh" /etc/infer-dev/hooks/stage-2/on-every-run.d/00-infer-dev-cache-dir.sh
install -m 0644 "$S/hooks-README" /etc/infer-dev/hooks/README

# Values with no spaces, as pam_env reads them.
for var in XDG_CACHE_HOME RATTLER_CACHE_DIR CUDA_HOME; do
  eval "value=\${$var:-}"
  [ -z "$value" ] || { sed -i "/^$var=/d" /etc/environment; echo "$var=$value" >>/etc/environment; }
done
{
  echo '# infer-dev: the image environment for login shells (SSH), written at build time.'
  for var in PATH LD_LIBRARY_PATH CUDA_HOME CUDA_VERSION NVIDIA_VISIBLE_DEVICES NVIDIA_DRIVER_CAPABILITIES LANG TZ XDG_CACHE_HOME RATTLER_CACHE_DIR; do
    eval "value=\${$var:-}"
    [ -z "$value" ] || printf 'export %s=%s\n' "$var" "'$value'"
  done
  # The dev tools install for `me` (WITH_DEV_TOOLS=1) put their commands here.
  # shellcheck disable=SC2016 # written for the login shell to expand
  echo 'for d in "$HOME/.local/bin" "$HOME/.pixi/bin" "$HOME/.bun/bin"; do case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$d:$PATH" ;; esac; done; export PATH'
} >/etc/profile.d/00-infer-dev-env.sh
