#!/usr/bin/env bash
# Installs what netpol-agent needs on a fresh Debian 12 machine (as root) and builds it:
# nftables and libnftables (the addon links it), iproute2 and busybox (the sandbox and the demo),
# a C toolchain for the addon and the benchmark's load generator, then npm ci and the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "setup: run as root (apt-get, network namespaces, nftables)" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends nftables libnftables-dev iproute2 busybox kmod procps build-essential python3 ca-certificates >/dev/null
# Bridged pods reach nftables only through br_netfilter (absent on some kernels: then the check says so).
modprobe br_netfilter 2>/dev/null || true
# node-gyp builds the addon against the machine's Node headers, offline.
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
npm ci --no-audit --no-fund
npm run build
