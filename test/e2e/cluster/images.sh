#!/usr/bin/env bash
# Builds the cluster's container images without a registry, as docker-save archives cached in
# $E2E_CACHE/images/ (a second run is a no-op):
#   pause:e2e    the sandbox image: a static C program that sleeps until SIGTERM and reaps children
#   busybox:e2e  Debian's busybox-static with its applet symlinks
#   nginx:e2e    Debian's nginx-light in a debootstrap --variant=minbase bookworm root filesystem, port 80
#   coredns:e2e  the CoreDNS binary from build.sh, alone (it is static)
# Usage: images.sh [BIN_DIR]     (BIN_DIR from build.sh; without it, no coredns image)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
bin_dir=${1:-}
out="$E2E_CACHE/images"
mkdir -p "$out"
exec 9> "$E2E_CACHE/.images.lock"
flock 9
work=$(mktemp -d "$E2E_CACHE/image-work.XXXXXX")
trap 'rm -rf "$work"' EXIT
archive() { "$here/lib/image-archive.sh" "$@"; }

if [[ ! -f "$out/pause.tar" ]]; then
  mkdir -p "$work/pause"
  cat > "$work/pause.c" <<'C'
/* The pod sandbox's process: holds the namespaces, reaps orphans, exits on SIGTERM/SIGINT. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>
static void leave(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }
int main(void) {
  signal(SIGTERM, leave); signal(SIGINT, leave); signal(SIGCHLD, reap);
  for (;;) pause();
}
C
  gcc -static -Os -s -o "$work/pause/pause" "$work/pause.c"
  archive "$out/pause.tar" pause:e2e "$work/pause" '{"Entrypoint":["/pause"]}'
  log "image pause:e2e written"
fi

if [[ ! -f "$out/busybox.tar" ]]; then
  (cd "$work" && apt-get download -o APT::Sandbox::User=root busybox-static >/dev/null)
  dpkg-deb -x "$work"/busybox-static_*.deb "$work/busybox-deb"
  root="$work/busybox"
  mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
  cp "$work/busybox-deb/bin/busybox" "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  archive "$out/busybox.tar" busybox:e2e "$root" '{"Cmd":["sh"],"Env":["PATH=/bin"]}'
  log "image busybox:e2e written"
fi

if [[ ! -f "$out/nginx.tar" ]]; then
  mirror=$(sed -n 's#^URIs: *\(http[^ ]*/debian\)$#\1#p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  mirror=${mirror:-http://deb.debian.org/debian}
  root="$work/nginx"
  t=$(date +%s)
  debootstrap --variant=minbase --include=nginx-light bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # Slim it like the official slim images: no docs, man pages, locales or apt lists.
  rm -rf "$root"/usr/share/{doc,man,info,locale}/* "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log "$root"/var/log/apt/*
  # A plain page at / so `wget --spider nginx` gets 200; logs to the container's stdout/stderr.
  printf 'nginx:e2e\n' > "$root/var/www/html/index.html"
  ln -sf /dev/stdout "$root/var/log/nginx/access.log"
  ln -sf /dev/stderr "$root/var/log/nginx/error.log"
  archive "$out/nginx.tar" nginx:e2e "$root" \
    '{"Cmd":["nginx","-g","daemon off;"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"ExposedPorts":{"80/tcp":{}}}'
  log "image nginx:e2e written (debootstrap and archive in $(( $(date +%s) - t )) s)"
fi

if [[ -n "$bin_dir" && ( ! -f "$out/coredns.tar" || "$out/coredns.tar" -ot "$bin_dir/coredns" ) ]]; then
  mkdir -p "$work/coredns/etc/coredns" "$work/coredns/tmp"
  cp "$bin_dir/coredns" "$work/coredns/coredns"
  archive "$out/coredns.tar" coredns:e2e "$work/coredns" '{"Entrypoint":["/coredns"],"ExposedPorts":{"53/udp":{},"53/tcp":{}}}'
  log "image coredns:e2e written"
fi
ls "$out"/*.tar
