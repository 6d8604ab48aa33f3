#!/usr/bin/env bash
# Sets up a fresh machine (Debian 12, root, Go installed) and runs every test tier:
#   1. scripts/test-e2e.sh: builds the real cluster (Kubernetes, etcd and CoreDNS from the Go module proxy,
#      cached) and the agent's image from our Dockerfile, then the docs' walkthrough in that cluster with
#      the DaemonSet of manifests/ (test/e2e);
#   2. npm test: unit (pure, with the nftables fake), conformance (the upstream netpol e2e suite through
#      probe), netns (real nftables and real packets in network namespaces), ship (manifests, and the image
#      built and run for real);
#   3. npm run test:api: conformance across nodes, faults and recovery through the real API server
#      (test/e2e/api), with one agent per sandbox node.
# The cluster tier goes first: it builds what the API tier needs, and warms the image build's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
bash scripts/setup.sh
# Beyond what the agent needs: the image test builds our Dockerfile for real (Debian's docker.io, and
# debootstrap for the local stand-in of node:20-bookworm-slim); the addon test drops capabilities (capsh).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap libcap2-bin >/dev/null
bash scripts/test-e2e.sh
e2e_done=$SECONDS
npm test
npm_done=$SECONDS
npm run test:api
echo "test: cluster tier $((e2e_done - started)) s (setup included), npm test $((npm_done - e2e_done)) s, API tier $((SECONDS - npm_done)) s, total $((SECONDS - started)) s" >&2
