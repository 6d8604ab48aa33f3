#!/usr/bin/env bash
# Builds the cluster's binaries from the Go module proxy at pinned versions:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl, etcd, etcdctl, coredns.
# Binaries land in $E2E_CACHE/bin-<key>/ (key = versions + Go version + flags); a complete folder makes a
# second run a no-op. Compilation reuses Go's default module and build caches, so a fresh folder after a
# version bump only recompiles what changed.
# Usage: build.sh            (prints the binary folder on stdout's last line)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib/common.sh
. "$here/lib/common.sh"
# shellcheck source=lib/kubernetes-module.sh
. "$here/lib/kubernetes-module.sh"

K8S_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
COREDNS_VERSION=v1.15.0
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# The build flags are part of the key: changing them must not reuse binaries built with other ones.
k8s_ldflags="-s -w$(kubernetes_version_ldflags "$K8S_VERSION")"
key_text="k8s=$K8S_VERSION etcd=$ETCD_VERSION coredns=$COREDNS_VERSION $(go env GOVERSION) $k8s_ldflags coredns-plugins=v1"
key=$(printf '%s' "$key_text" | sha256sum | cut -c1-16)
bin_dir="$E2E_CACHE/bin-$key"
# Two runs at once (two clusters starting) build once: the second waits, then finds the binaries.
exec 9> "$E2E_CACHE/.build.lock"
flock 9
if [[ -f "$bin_dir/.complete" ]]; then
  log "binaries up to date in $bin_dir"
  echo "$bin_dir"
  exit 0
fi

started=$(date +%s)
mkdir -p "$bin_dir"
work="$E2E_CACHE/go-src"

# Kubernetes, in a throwaway module (lib/kubernetes-module.sh says why).
k8s_mod="$work/kubernetes-$K8S_VERSION"
kubernetes_module "$k8s_mod" e2e.local/kubernetes "$K8S_VERSION"
(
  cd "$k8s_mod"
  pkgs=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    pkgs+=("k8s.io/kubernetes/cmd/$c")
  done
  go get "${pkgs[@]/%/@$K8S_VERSION}" >/dev/null 2>&1 || go get "${pkgs[@]/%/@$K8S_VERSION}"
  t=$(date +%s)
  # One invocation: the six commands share most packages.
  go build -trimpath -ldflags "$k8s_ldflags" -o "$bin_dir/" "${pkgs[@]}"
  log "kubernetes $K8S_VERSION built in $(( $(date +%s) - t )) s"
)

# etcd and etcdctl (with `-o dir/` the server binary would be named after its package, `server`).
etcd_mod="$work/etcd-$ETCD_VERSION"
rm -rf "$etcd_mod"; mkdir -p "$etcd_mod"
(
  cd "$etcd_mod"
  go mod init e2e.local/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION" >/dev/null 2>&1 \
    || go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
  t=$(date +%s)
  go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcdctl" go.etcd.io/etcd/etcdctl/v3
  log "etcd $ETCD_VERSION built in $(( $(date +%s) - t )) s"
)

# CoreDNS with only the plugins a cluster's DNS needs: the full plugin set pulls in every cloud SDK.
# The directive order is upstream's plugin.cfg order restricted to these plugins.
coredns_mod="$work/coredns-$COREDNS_VERSION"
rm -rf "$coredns_mod"; mkdir -p "$coredns_mod"
(
  cd "$coredns_mod"
  go mod init e2e.local/coredns >/dev/null 2>&1
  cat > main.go <<'GO'
// CoreDNS with the plugins of a cluster DNS only.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

func init() {
	dnsserver.Directives = []string{"reload", "ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes"}
}

func main() { coremain.Run() }
GO
  go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 || go get "github.com/coredns/coredns@$COREDNS_VERSION"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  t=$(date +%s)
  go build -trimpath -ldflags "-s -w" -o "$bin_dir/coredns" .
  log "coredns $COREDNS_VERSION built in $(( $(date +%s) - t )) s"
)

printf '%s\n' "$key_text" > "$bin_dir/.complete"
log "all binaries built in $(( $(date +%s) - started )) s into $bin_dir"
echo "$bin_dir"
