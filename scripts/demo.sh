#!/usr/bin/env bash
# Sets up a fresh machine and runs the demo on the embedded default scenario (the Kubernetes docs'
# access-nginx walkthrough: one real `netpol-agent run` per node, real packets between pods that are
# network namespaces). Arguments go to `netpol-agent demo` (e.g. --keep, --topology bridged).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./bin/netpol-agent demo "$@"
