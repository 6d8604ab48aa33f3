#!/usr/bin/env bash
# Makes a local stand-in for the official golang:1.26-bookworm image (the Dockerfile's Go build stage) as
# a root filesystem tarball, for machines that reach no image registry: the node:20-bookworm-slim
# stand-in of base-image.sh (Debian bookworm, minbase) with this machine's Go toolchain (`go env GOROOT`,
# the release tarball's tree) at /usr/local/go, where the official image has it. GO_IMAGE_CHANGES
# (versions.sh) gives it the official image's environment (PATH, GOPATH=/go, GOLANG_VERSION,
# GOTOOLCHAIN=local). It has no gcc: the plugin builds with CGO_ENABLED=0, which needs none.
#
# Usage: go-image.sh BASE-ROOTFS.tar OUTPUT.tar   (seconds: one copy and one append)
set -euo pipefail

base="${1:?usage: go-image.sh BASE-ROOTFS.tar OUTPUT.tar}"
out="${2:?usage: go-image.sh BASE-ROOTFS.tar OUTPUT.tar}"
source "$(dirname "$0")/versions.sh"

goroot="$(go env GOROOT)"
version="$(go env GOVERSION)"
case "$version" in
  "go$GO_MINOR" | "go$GO_MINOR".*) ;;
  *) echo "go-image: $GO_IMAGE needs Go $GO_MINOR; this machine's go is $version ($goroot)" >&2; exit 1 ;;
esac
cp "$base" "$out.partial"
# Appended as usr/local/go, owned by root as in the official image.
tar -rf "$out.partial" -C "$(dirname "$goroot")" --transform "s,^$(basename "$goroot"),usr/local/go," \
  --numeric-owner --owner=0 --group=0 "$(basename "$goroot")"
mv "$out.partial" "$out"
echo "go-image: $version from $goroot on the base; $(du -m "$out" | cut -f1) MiB rootfs tarball at $out" >&2
