#!/usr/bin/env bash
# Builds the upstream Kubernetes e2e suite that holds the NetworkPolicy specs ("Netpol", the ones CNI
# projects run in their CI), at the version of the cluster, from the Go module proxy:
#   e2e.test  `go test -c` of k8s.io/kubernetes/test/e2e
#   ginkgo    the Ginkgo CLI at the version Kubernetes requires (parallel runs of e2e.test)
#   agnhost   the suite's test image binary (static), at the version test/utils/image/manifest.go names,
#             packaged as agnhost-image.tar (docker-save) with exactly the name the suite uses,
#             registry.k8s.io/e2e-test-images/agnhost:<version> (its pods use IfNotPresent: nothing is pulled)
# into $E2E_CACHE/upstream-<key>/ (key = versions + Go version + flags); a complete folder makes a second
# run a no-op. It shares Go's caches and build.sh's lock with the cluster's build.
# Usage: build-upstream.sh      (prints the folder on stdout's last line)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/kubernetes-module.sh"

K8S_VERSION=v1.34.4
GINKGO_VERSION=v2.21.0
AGNHOST_VERSION=2.56
AGNHOST_IMAGE=registry.k8s.io/e2e-test-images/agnhost:$AGNHOST_VERSION
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

e2e_ldflags="-s -w$(kubernetes_version_ldflags "$K8S_VERSION")"
key_text="k8s=$K8S_VERSION ginkgo=$GINKGO_VERSION agnhost=$AGNHOST_VERSION $(go env GOVERSION) $e2e_ldflags"
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-16)
out="$E2E_CACHE/upstream-$key"
archive="$out/agnhost-image.tar"
complete() { [[ -f "$out/.complete" ]]; }
if complete; then
  log "upstream e2e suite up to date in $out"
  echo "$out"
  exit 0
fi

started=$(date +%s)
mod="$E2E_CACHE/go-src/kubernetes-e2e-$K8S_VERSION.$$"
trap 'rm -rf "$mod"' EXIT
kubernetes_module "$mod" e2e.local/kubernetes-e2e "$K8S_VERSION"
cd "$mod"
# -t: the suite's own test dependencies. The Ginkgo CLI is pinned to the version Kubernetes requires, so the
# CLI and the library inside e2e.test speak the same parallel protocol.
go get -t "k8s.io/kubernetes/test/e2e@$K8S_VERSION" "k8s.io/kubernetes/test/images/agnhost@$K8S_VERSION" \
  "github.com/onsi/ginkgo/v2/ginkgo@$GINKGO_VERSION" >/dev/null 2>&1 \
  || go get -t "k8s.io/kubernetes/test/e2e@$K8S_VERSION" "k8s.io/kubernetes/test/images/agnhost@$K8S_VERSION" "github.com/onsi/ginkgo/v2/ginkgo@$GINKGO_VERSION"
required=$(go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)
[[ $required == "$GINKGO_VERSION" ]] || die "k8s.io/kubernetes $K8S_VERSION requires ginkgo $required, not $GINKGO_VERSION: update GINKGO_VERSION"
log "upstream e2e modules ready in $(( $(date +%s) - started )) s"

# One Go build at a time with build.sh (they share most packages and Go's build cache).
exec 9> "$E2E_CACHE/.build.lock"
flock 9
if complete; then echo "$out"; exit 0; fi
mkdir -p "$out"
t=$(date +%s)
go test -c -trimpath -ldflags "$e2e_ldflags" -o "$out/e2e.test" k8s.io/kubernetes/test/e2e
log "e2e.test built in $(( $(date +%s) - t )) s"
t=$(date +%s)
go build -trimpath -ldflags "-s -w" -o "$out/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
go build -trimpath -ldflags "-s -w -X main.Version=$AGNHOST_VERSION" -o "$out/agnhost" k8s.io/kubernetes/test/images/agnhost
log "ginkgo and agnhost built in $(( $(date +%s) - t )) s"

# The image: the static agnhost at /agnhost (the specs run /agnhost serve-hostname and /agnhost connect).
root="$mod/agnhost-root"
mkdir -p "$root/etc" "$root/tmp"
cp "$out/agnhost" "$root/agnhost"
printf 'root:x:0:0:root:/:/agnhost\nnobody:x:65534:65534:nobody:/:/agnhost\n' > "$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
"$here/lib/image-archive.sh" "$archive" "$AGNHOST_IMAGE" "$root" '{"Entrypoint":["/agnhost"],"Cmd":["pause"]}'
printf '%s\n' "$key_text" > "$out/.complete"
log "upstream e2e suite built in $(( $(date +%s) - started )) s into $out (agnhost image $archive)"
echo "$out"
