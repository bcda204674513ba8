#!/bin/sh
# APT during the image build: `apt-setup.sh begin` points apt at APT_MIRROR and
# APT_PROXY (build args) and makes it fail instead of hanging; `apt-setup.sh end`
# removes both again unless KEEP_APT_MIRROR / KEEP_APT_PROXY is 1, and empties
# the .deb cache (the Dockerfile's RUN removes the package lists). Debian and Ubuntu,
# one-line (sources.list) and deb822 (*.sources) formats.
#   APT_MIRROR  e.g. http://mirror.example: replaces the scheme and host of the distribution's
#               archives (deb.debian.org, security.debian.org, [*.]archive.ubuntu.com,
#               security.ubuntu.com, ports.ubuntu.com), keeping their paths (/debian,
#               /debian-security, /ubuntu); other sources (the CUDA repository) stay as they are
#   APT_PROXY   e.g. http://proxy.example:3142: apt's HTTP(S) proxy
set -eu
PROXY_CONF=/etc/apt/apt.conf.d/90infer-dev-build-proxy
TIMEOUTS_CONF=/etc/apt/apt.conf.d/90infer-dev-timeouts
BACKUP=/var/lib/infer-dev/apt-sources.orig

sources() { ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; }

begin() {
  # A mirror that does not answer must fail the build, not stall it.
  printf 'Acquire::Retries "3";\nAcquire::http::Timeout "30";\nAcquire::https::Timeout "30";\n' >"$TIMEOUTS_CONF"
  if [ -n "${APT_PROXY:-}" ]; then
    printf 'Acquire::http::Proxy "%s";\nAcquire::https::Proxy "%s";\n' "$APT_PROXY" "$APT_PROXY" >"$PROXY_CONF"
    echo "apt-setup: apt proxy $APT_PROXY"
  fi
  if [ -n "${APT_MIRROR:-}" ]; then
    mkdir -p "$BACKUP"
    for f in $(sources); do
      cp -p --parents "$f" "$BACKUP"
      sed -i -E "s#https?://(deb\.debian\.org|security\.debian\.org|([a-z]+\.)?archive\.ubuntu\.com|security\.ubuntu\.com|ports\.ubuntu\.com)(/|[[:space:]]|\$)#${APT_MIRROR%/}\3#g" "$f"
    done
    echo "apt-setup: apt mirror $APT_MIRROR"
  fi
}

end() {
  if [ "${KEEP_APT_PROXY:-0}" != 1 ]; then rm -f "$PROXY_CONF"; fi
  if [ -n "${APT_MIRROR:-}" ] && [ "${KEEP_APT_MIRROR:-0}" != 1 ] && [ -d "$BACKUP" ]; then
    cp -a "$BACKUP/etc/apt/." /etc/apt/
  fi
  rm -rf "$BACKUP"
  apt-get clean
}

case "${1:-}" in
  begin) begin ;;
  end) end ;;
  *) echo "usage: apt-setup.sh begin|end" >&2; exit 2 ;;
esac
