#!/usr/bin/env bash
# Builds helm (the chart tests' renderer: test/ship/helm-chart.test.ts, test/e2e/helm.test.ts) from the Go
# module proxy at a pinned version, with this machine's Go, into $E2E_CACHE/helm-<key>/helm. A complete
# folder makes a second run a no-op. Prints the binary's path on stdout's last line.
# Usage: scripts/build-helm.sh
set -euo pipefail
repo_root=$(cd "$(dirname "$0")/.." && pwd)
# The same cache as the cluster binaries (test/e2e/cluster/lib/common.sh): git-ignored, shareable.
E2E_CACHE=${E2E_CACHE:-$repo_root/.cache/e2e}
HELM_VERSION=v3.22.1
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
key=$(printf '%s' "helm=$HELM_VERSION $(go env GOVERSION) $ldflags" | sha256sum | cut -c1-16)
dir="$E2E_CACHE/helm-$key"
mkdir -p "$E2E_CACHE"
# Two test files building at once build once: the second waits, then finds the binary.
exec 9> "$E2E_CACHE/.helm-build.lock"
flock 9
if [[ -x "$dir/helm" ]]; then
  echo "$dir/helm"
  exit 0
fi
work="$E2E_CACHE/go-src/helm-$HELM_VERSION"
rm -rf "$work" "$dir.tmp"
mkdir -p "$work" "$dir.tmp"
(
  cd "$work"
  # A throwaway main module that requires the pinned version: the build uses helm's own dependency versions.
  go mod init build.local/helm >/dev/null 2>&1
  go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >/dev/null 2>&1 || go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  go build -trimpath -ldflags "$ldflags" -o "$dir.tmp/helm" helm.sh/helm/v3/cmd/helm
)
"$dir.tmp/helm" version --short >&2
mv "$dir.tmp" "$dir"
echo "$dir/helm"
