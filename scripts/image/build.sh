#!/usr/bin/env bash
# Builds the netpol-agent image from the repository's Dockerfile on this machine, where no image
# registry is reachable, and saves it as a docker-save archive for `ctr images import` / `docker load`:
#   1. the node:20-bookworm-slim base comes from base-image.sh, the golang:1.26-bookworm of the Go build
#      stage from go-image.sh (that base with this machine's Go), both cached in .cache/image;
#   2. a private Docker daemon (dockerd.sh) imports it under that name and builds with BuildKit;
#   3. the image is saved to .cache/image/netpol-agent-TAG.tar, then the daemon stops.
# The extra CA certificates of this machine (/usr/local/share/ca-certificates, a TLS-intercepting
# proxy) reach npm in the build stage as the BuildKit secret extra-ca; they are not in the image.
#
# Usage: build.sh [--tag TAG] [--daemon STATE]
#   --tag     image tag (default: the version in package.json); the image is netpol-agent:TAG
#   --daemon  use a daemon already started by `dockerd.sh start` (left running) instead of a new one
# Prints the archive's path on stdout; progress and timings on stderr.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="$repo/.cache/image"
source "$here/versions.sh"

tag="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
state=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag="$2"; shift 2 ;;
    --daemon) state="$2"; shift 2 ;;
    *) echo "usage: build.sh [--tag TAG] [--daemon STATE]" >&2; exit 2 ;;
  esac
done
image="netpol-agent:$tag"
archive="$cache/netpol-agent-$tag.tar"
mkdir -p "$cache"

timed() { # LABEL COMMAND...: runs it and reports its duration on stderr
  local label="$1" start=$SECONDS; shift
  "$@"
  echo "build.sh: $label: $((SECONDS - start)) s" >&2
}

base_tar="$cache/node-$NODE_VERSION-bookworm-slim-r$BASE_RECIPE.rootfs.tar"
if [ ! -f "$base_tar" ]; then
  timed "base root filesystem (debootstrap + Node $NODE_VERSION)" bash "$here/base-image.sh" "$base_tar"
fi

go_tar="$cache/golang-$(go env GOVERSION)-bookworm-r$BASE_RECIPE.rootfs.tar"
if [ ! -f "$go_tar" ]; then
  timed "Go build stage root filesystem ($GO_IMAGE stand-in)" bash "$here/go-image.sh" "$base_tar" "$go_tar"
fi

if [ -z "$state" ]; then
  state="$(bash "$here/dockerd.sh" start)"
  trap 'bash "$here/dockerd.sh" stop "$state"' EXIT
  # A Ctrl-C (or SIGTERM) exits through the EXIT trap: without a trap of its own, bash dies of the signal
  # its foreground child died of, and the daemon would outlive the build.
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
docker=(/usr/bin/docker -H "unix://$state/docker.sock")

# The base is imported once per data root; a second tag records which tarball it came from.
base_id="netpol-agent-base:node-$NODE_VERSION-r$BASE_RECIPE"
if ! "${docker[@]}" image inspect "$base_id" >/dev/null 2>&1; then
  timed "docker import $BASE_IMAGE" "${docker[@]}" import "${BASE_IMAGE_CHANGES[@]}" "$base_tar" "$BASE_IMAGE" >/dev/null
  "${docker[@]}" tag "$BASE_IMAGE" "$base_id"
fi

go_id="netpol-agent-base:$(go env GOVERSION)-r$BASE_RECIPE"
if ! "${docker[@]}" image inspect "$go_id" >/dev/null 2>&1; then
  timed "docker import $GO_IMAGE" "${docker[@]}" import "${GO_IMAGE_CHANGES[@]}" "$go_tar" "$GO_IMAGE" >/dev/null
  "${docker[@]}" tag "$GO_IMAGE" "$go_id"
fi

secret=()
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
  cat /usr/local/share/ca-certificates/*.crt >"$state/extra-ca.pem"
  secret=(--secret "id=extra-ca,src=$state/extra-ca.pem")
fi
# --network=host: the daemon has no bridge (dockerd.sh), and the build reaches apt and npm as the
# host does.
build() { # the full BuildKit log goes to .cache/image/build-TAG.log, its end to stderr on failure
  local status=0
  DOCKER_BUILDKIT=1 "${docker[@]}" build --network=host "${secret[@]}" --progress=plain -t "$image" "$repo" \
    >"$cache/build-$tag.log" 2>&1 || status=$?
  [ "$status" -eq 0 ] || tail -40 "$cache/build-$tag.log" >&2
  return "$status"
}
timed "docker build (BuildKit)" build

timed "docker save" "${docker[@]}" save -o "$archive.partial" "$image"
mv "$archive.partial" "$archive"
size="$("${docker[@]}" image inspect --format '{{.Size}}' "$image")"
echo "build.sh: $image is $((size / 1000000)) MB ($((size / 1048576)) MiB); archive $(du -m "$archive" | cut -f1) MiB at $archive" >&2
echo "$archive"
