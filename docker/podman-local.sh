#!/usr/bin/env bash
# Podman on a machine with no Docker engine and no registry (the CI and
# development machines): a private podman configuration passed by environment
# variables (nothing under /etc is changed) and a Debian 12 base image made
# locally from the apt mirror this machine already uses. The image tests and
# benchmarks use it; so can a person:
#
#   eval "$(docker/podman-local.sh env)"      # CONTAINERS_CONF, CONTAINERS_STORAGE_CONF for podman
#   docker/podman-local.sh base                # makes (or finds) the base image, prints its name
#   ENGINE=podman BASE_IMAGE=$(docker/podman-local.sh base) WITH_DEV_TOOLS=0 docker/build.sh
#
# Everything lives under $INFER_DEV_IMAGES (default ~/.cache/infer-dev/images):
# conf/ (the two config files), storage/ (podman's image store: the base image
# and the build cache survive between runs, so a warm build takes seconds),
# debian-bookworm-minbase.tar (the base's root file system, made once).
# The machine facts behind each setting: see docker/README.md.
set -euo pipefail

DIR=${INFER_DEV_IMAGES:-${INFER_DEV_CACHE:-$HOME/.cache/infer-dev}/images}
BASE_IMAGE=localhost/infer-dev-base:bookworm
ROOTFS_TAR=$DIR/debian-bookworm-minbase.tar

fail() { echo "podman-local: $*" >&2; exit 1; }

# podman's default network is 10.88.0.0/16. A podman inside a container (the fresh-machine check runs the tests
# in one) finds that subnet already on its own eth0, given by the outer podman: the routes overlap, and nothing
# reaches the inner containers (builds cannot resolve the mirror, published ports are unreachable). Then ours is
# the first free 10.N.0.0/16, in a network config dir of its own; elsewhere podman's own config is kept.
# Prints the [network] section to add, or nothing.
network_conf() {
  local shipped=/etc/cni/net.d/87-podman-bridge.conflist used n
  [ -s "$shipped" ] && command -v ip >/dev/null || return 0
  used=$(ip -4 -o addr show | awk '$2 !~ /^cni-podman/ {print $4}')
  grep -q '^10\.88\.' <<<"$used" || return 0
  for n in $(seq 89 254); do
    grep -q "^10\.$n\." <<<"$used" && continue
    mkdir -p "$DIR/conf/cni"
    sed "s#10\.88\.#10.$n.#g" "$shipped" >"$DIR/conf/cni/87-podman-bridge.conflist"
    printf '[network]\nnetwork_config_dir = "%s"\n' "$DIR/conf/cni"
    return 0
  done
  fail "no free 10.N.0.0/16 for podman's network (every one is on an interface here)"
}

# Writes conf/containers.conf and conf/storage.conf; prints the exports that select them.
write_conf() {
  command -v podman >/dev/null || fail "podman is not installed (apt-get install podman runc)"
  local runc nofile nproc pidmax driver=overlay
  runc=$(command -v runc || true)
  [ -n "$runc" ] || [ ! -x /usr/sbin/runc ] || runc=/usr/sbin/runc
  [ -n "$runc" ] || fail "runc is not installed (apt-get install runc): crun 1.8 cannot run containers on a cgroup v1 hybrid host"
  mkdir -p "$DIR/conf" "$DIR/storage"
  # Podman 4.3 asks for nofile/nproc 1048576 and root here lacks CAP_SYS_RESOURCE: stay within
  # the hard limits, nproc also within pid_max (the limit conmon and runc really run with).
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu); pidmax=$(cat /proc/sys/kernel/pid_max)
  [ "$nofile" = unlimited ] && nofile=1048576
  { [ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ]; } && nproc=$pidmax
  # overlay needs a backing file system that is neither overlay nor tmpfs.
  case $(stat -f -c %T "$DIR/storage") in overlayfs | tmpfs) driver=vfs ;; esac
  cat >"$DIR/conf/containers.conf.tmp" <<EOF
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[engine.runtimes]
runc = ["$runc"]
$(network_conf)
EOF
  cat >"$DIR/conf/storage.conf.tmp" <<EOF
[storage]
driver = "$driver"
graphroot = "$DIR/storage"
runroot = "/run/infer-dev-podman-$(printf %s "$DIR" | md5sum | cut -c1-8)"
EOF
  mv "$DIR/conf/containers.conf.tmp" "$DIR/conf/containers.conf"
  mv "$DIR/conf/storage.conf.tmp" "$DIR/conf/storage.conf"
  export CONTAINERS_CONF=$DIR/conf/containers.conf CONTAINERS_STORAGE_CONF=$DIR/conf/storage.conf
}

# The mirror this machine's apt uses: the first URIs: of its deb822 sources, else the first deb line.
apt_mirror() {
  local mirror
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || fail "no apt mirror found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list"
  echo "$mirror"
}

# Makes the base's root file system tar once (mmdebstrap, else debootstrap), then imports it when podman lacks it.
ensure_base() {
  write_conf
  if podman image exists "$BASE_IMAGE"; then echo "$BASE_IMAGE"; return; fi
  if [ ! -s "$ROOTFS_TAR" ]; then
    local mirror log=$DIR/bootstrap.log
    mirror=$(apt_mirror)
    echo "podman-local: making the Debian 12 minbase from $mirror (about a minute; log $log)" >&2
    if command -v mmdebstrap >/dev/null; then
      # mmdebstrap picks its output format from the name: keep .tar last.
      mmdebstrap --variant=minbase bookworm "$DIR/rootfs.tmp.tar" "deb $mirror bookworm main" >"$log" 2>&1 \
        || fail "mmdebstrap of bookworm from $mirror failed: $(tail -3 "$log" | tr '\n' ' ')"
      mv "$DIR/rootfs.tmp.tar" "$ROOTFS_TAR"
    elif command -v debootstrap >/dev/null; then
      local root=$DIR/rootfs.tmp
      rm -rf "$root"
      debootstrap --variant=minbase bookworm "$root" "$mirror" >"$log" 2>&1 \
        || { rm -rf "$root"; fail "debootstrap of bookworm from $mirror failed: $(tail -3 "$log" | tr '\n' ' ')"; }
      rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
      tar -C "$root" -cf "$DIR/rootfs.tmp.tar" . && rm -rf "$root"
      mv "$DIR/rootfs.tmp.tar" "$ROOTFS_TAR"
    else
      fail "neither mmdebstrap nor debootstrap is installed (apt-get install mmdebstrap)"
    fi
  fi
  # Like the official debian images: CMD bash, which our ENTRYPOINT must clear.
  podman import --change 'CMD ["/bin/bash"]' "$ROOTFS_TAR" "$BASE_IMAGE" >"$DIR/import.log" 2>&1 \
    || fail "podman import of $ROOTFS_TAR failed: $(tail -3 "$DIR/import.log" | tr '\n' ' ')"
  echo "$BASE_IMAGE"
}

case ${1:-} in
  env)
    write_conf
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"
    ;;
  base) ensure_base ;;
  *)
    echo "usage: docker/podman-local.sh env|base" >&2
    exit 2
    ;;
esac
