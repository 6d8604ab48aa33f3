#!/usr/bin/env bash
# Installs the Debian packages the real-cluster tier needs (CI calls this once per machine).
# Nothing starts on install here (no systemd); the cluster scripts start their own daemons.
set -euo pipefail
packages=(
  containerd runc containernetworking-plugins  # the node's runtime and the bridge/host-local/portmap CNI plugins
  iptables conntrack socat ethtool             # what kubelet and kube-proxy look for on a node
  nftables iproute2 util-linux                 # nft, ip, nsenter, mountpoint
  debootstrap openssl gcc libc6-dev            # the nginx root filesystem, the PKI, the static pause program
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages installed"
  exit 0
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
