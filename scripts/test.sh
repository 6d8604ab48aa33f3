#!/usr/bin/env bash
# Sets up a fresh machine and runs every test tier: unit (pure, with the nftables fake), conformance
# (the upstream netpol e2e suite through probe), and netns (real nftables and real packets in network
# namespaces, including the upstream suite through the dataplane in routed and bridged topologies).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Beyond what the agent needs: the image test builds our Dockerfile for real (Debian's docker.io, and
# debootstrap for the local stand-in of node:20-bookworm-slim); the addon test drops capabilities (capsh).
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io debootstrap libcap2-bin >/dev/null
npm test
