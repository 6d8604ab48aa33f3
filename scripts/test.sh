#!/usr/bin/env bash
# Sets up a fresh machine and runs every test tier: unit (pure, with the nftables fake), conformance
# (the upstream netpol e2e suite through probe), and netns (real nftables and real packets in network
# namespaces, including the upstream suite through the dataplane in routed and bridged topologies).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
