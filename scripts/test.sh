#!/usr/bin/env bash
# Sets up a fresh machine (Debian 12, root, Go installed) and runs every test tier:
#   1. scripts/test-e2e.sh: builds the real cluster (Kubernetes, etcd and CoreDNS from the Go module proxy,
#      cached), the upstream Kubernetes e2e suite and the agent's image from our Dockerfile, then in a
#      two-node cluster the docs' walkthrough with the DaemonSet of manifests/, the CNI plugin's tests, and
#      the upstream Netpol specs against the DaemonSet with their control run (test/e2e);
#   2. npm test: unit (pure, with the nftables fake), conformance (the upstream netpol e2e suite through
#      probe), netns (real nftables and real packets in network namespaces), ship (manifests, and the image
#      built and run for real);
#   3. npm run test:api: conformance across nodes, faults and recovery through the real API server
#      (test/e2e/api), with one agent per sandbox node.
# The cluster tier goes first: it builds what the API tier needs, and warms the image build's cache. Each
# tier's duration is printed at the end (scripts/test-e2e.sh prints its steps').
set -euo pipefail
cd "$(dirname "$0")/.."
# Each tier's duration, printed at the end also when one fails (the failing tier is the last one listed).
tiers=()
started=$SECONDS
tier() { # LABEL COMMAND...
  local label=$1 start=$SECONDS; shift
  "$@" || { tiers+=("$label $((SECONDS - start)) s (failed)"); return 1; }
  tiers+=("$label $((SECONDS - start)) s")
}
trap 'echo "test: ${tiers[*]/%/,} total $((SECONDS - started)) s" >&2' EXIT
setup() {
  bash scripts/setup.sh
  # Beyond what the agent needs: the image test builds our Dockerfile for real (Debian's docker.io, and
  # debootstrap for the local stand-in of node:20-bookworm-slim); the addon test drops capabilities (capsh).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap libcap2-bin >/dev/null
}
tier setup setup
tier "cluster tier" bash scripts/test-e2e.sh
tier "npm test" npm test
tier "API tier" npm run test:api
