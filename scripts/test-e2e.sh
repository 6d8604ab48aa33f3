#!/usr/bin/env bash
# The real-cluster tier (test/e2e: the docs' walkthrough with the agent installed from manifests/ on two
# nodes, the CNI plugin's tests, the control-plane-only tests, and the upstream Kubernetes Netpol e2e specs
# against the DaemonSet with their control run) on a fresh Debian 12 machine, as root, with Go installed
# (>= 1.26: etcd 3.6.16):
#   1. apt: what the cluster needs (test/e2e/cluster/setup.sh) and docker.io (the image build's daemon);
#      npm ci and the TypeScript build when scripts/setup.sh has not run yet;
#   2. the cluster's binaries from the Go module proxy (test/e2e/cluster/build.sh), its images (images.sh),
#      and the upstream e2e suite (build-upstream.sh: e2e.test, ginkgo, the agnhost image), all cached in
#      .cache/e2e (Go's own caches in their default places);
#   3. the agent's image from the Dockerfile (scripts/image/build.sh; base and BuildKit cache in .cache/image);
#   4. each test file of test/e2e (what `npm run test:e2e` runs) with E2E_AGENT_IMAGE set to that image's
#      archive and E2E_UPSTREAM to the suite's folder, one step each.
# Prints how long each step took. Every cluster a test starts is removed by the test (down.sh checks that
# nothing is left), also on failure and Ctrl-C; the image build stops its private Docker daemon on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "test-e2e: run as root (network namespaces, containerd, kubelet)" >&2; exit 1; }
command -v go >/dev/null || { echo "test-e2e: Go is missing (the cluster's binaries are built from the Go module proxy)" >&2; exit 1; }

steps=()
step() { # LABEL COMMAND...: runs it, records its duration (and its failure), returns its status
  local label="$1" start=$SECONDS status=0; shift
  echo "test-e2e: $label" >&2
  "$@" || status=$?
  steps+=("$(printf '%-34s %5d s' "$label" $((SECONDS - start)))$([ "$status" -eq 0 ] || echo "  FAILED (exit $status)")")
  return "$status"
}
report() {
  local status=$?
  # A step failed while the suite's build runs in the background: let it finish (nothing left running; its
  # work stays in Go's caches).
  if [ -n "${upstream_pid:-}" ] && kill -0 "$upstream_pid" 2>/dev/null; then wait "$upstream_pid" || true; fi
  [ ${#steps[@]} -eq 0 ] || { echo "test-e2e: durations"; printf '  %s\n' "${steps[@]}"; } >&2
  [ "$status" -eq 0 ] || echo "test-e2e: failed (exit $status)" >&2
}
trap report EXIT
# Through the EXIT trap on Ctrl-C too (bash would otherwise die of the signal without running it).
trap 'exit 130' INT
trap 'exit 143' TERM

install_packages() {
  bash test/e2e/cluster/setup.sh
  if ! command -v dockerd >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
  fi
  [ -d node_modules ] || bash scripts/setup.sh
}
build_agent_image() {
  archive="$(bash scripts/image/build.sh | tail -1)"
}
# The upstream suite's Go build runs while the images are made (debootstrap waits on the network and the
# disk more than on the CPU); its step is the wait for it after them.
start_upstream_build() {
  upstream_out=$(mktemp) upstream_err=$(mktemp)
  test/e2e/cluster/build-upstream.sh > "$upstream_out" 2> "$upstream_err" &
  upstream_pid=$!
}
wait_upstream_build() {
  local status=0
  wait "$upstream_pid" || status=$?
  cat "$upstream_err" >&2
  upstream=$(tail -1 "$upstream_out")
  rm -f "$upstream_out" "$upstream_err"
  return "$status"
}

step "packages (apt, npm)" install_packages
step "cluster binaries (Go)" bash -c 'test/e2e/cluster/build.sh >/dev/null'
start_upstream_build
step "cluster images" bash -c 'test/e2e/cluster/images.sh "$(test/e2e/cluster/build.sh 2>/dev/null | tail -1)" >/dev/null'
step "agent image (Dockerfile)" build_agent_image
step "upstream e2e suite (Go, the rest)" wait_upstream_build
step "npm run build" npm run build
# The CNI plugin's start latency is a measurement (p50/p99 with and without it), not a verdict: CI takes
# 20 pods a series to stay within its time; its never-unprotected trials keep their default count.
export E2E_CLUSTER=1 E2E_AGENT_IMAGE="$archive" E2E_UPSTREAM="$upstream" E2E_CNI_PODS="${E2E_CNI_PODS:-20}"
# Every file runs (each starts and removes its own cluster); the tier fails if any failed.
failed=0
for file in $(find build/test/e2e -maxdepth 1 -name '*.test.js' | sort); do
  step "${file#build/test/e2e/}" node --test --test-concurrency=1 "$file" || failed=1
done
exit "$failed"
