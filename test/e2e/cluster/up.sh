#!/usr/bin/env bash
# Starts a real Kubernetes v1.34.4 cluster of one or two nodes inside network namespaces it creates, and
# prints the state folder (last line of stdout) that down.sh, the kubectl wrapper and the tests use.
#
#   up.sh [--control-plane-only] [--nodes 1|2] [--image ARCHIVE]...
#
# Full mode: etcd, kube-apiserver (Node,RBAC), kube-controller-manager, kube-scheduler and CoreDNS (a
# Deployment behind the Service 10.96.0.10, as in a real cluster) in the first node's namespace; on each
# node containerd + runc with the bridge CNI (a CNI that enforces no policy), kubelet and kube-proxy
# (nftables mode). Two nodes (the default) are two namespaces joined by a veth pair (10.250.0.10 and
# 10.250.0.11); each node's bridge has its own pod range (10.244.0.0/24, 10.244.1.0/24), routed to the
# other node's range through that link, as a routed CNI does. Every node gets the pause/busybox/nginx/coredns
# images under the tag :e2e, plus every --image archive and the archives listed (colon-separated) in
# E2E_EXTRA_IMAGES (for example the agent's image, a docker-save tarball).
# --control-plane-only: etcd, kube-apiserver and kube-controller-manager without its pod garbage collector
# and node lifecycle controllers (pods bound to nodes without a kubelet stay), no node.
#
# Environment: E2E_ID (unique suffix, default random), E2E_STATE_ROOT (default /tmp), E2E_CACHE.
# Every process runs in the namespace (nsenter --net, sharing the host's mounts as kubelet, containerd and
# runc must). On any failure or Ctrl-C during start-up, down.sh removes what was started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/pki.sh"

mode=full
node_count=2
extra_images=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --control-plane-only) mode=control-plane ;;
    --image) extra_images+=("$2"); shift ;;
    --nodes) node_count=$2; shift ;;
    *) die "unknown argument $1 (usage: up.sh [--control-plane-only] [--nodes 1|2] [--image ARCHIVE]...)" ;;
  esac
  shift
done
[[ $node_count == 1 || $node_count == 2 ]] || die "--nodes takes 1 or 2 (the nodes share one veth pair), not $node_count"
[[ $mode == control-plane ]] && node_count=0
if [[ -n "${E2E_EXTRA_IMAGES:-}" ]]; then
  IFS=: read -r -a from_env <<< "$E2E_EXTRA_IMAGES"
  extra_images+=("${from_env[@]}")
fi
[[ $(id -u) -eq 0 ]] || die "needs root (network namespaces, mounts, cgroups)"
for tool in nsenter ip openssl go awk $([[ $mode == full ]] && echo containerd containerd-shim-runc-v2 runc ctr nft conntrack debootstrap gcc /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/portmap); do
  command -v "$tool" >/dev/null || die "$tool is missing: run test/e2e/cluster/setup.sh"
done
for a in "${extra_images[@]}"; do [[ -f "$a" ]] || die "image archive $a not found"; done

t_start=$(date +%s.%N)
bin=$("$here/build.sh" | tail -1)
[[ $mode == full ]] && "$here/images.sh" "$bin" >/dev/null
t_built=$(date +%s.%N)

id=${E2E_ID:-$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')}
[[ $id =~ ^[a-z0-9]{1,8}$ ]] || die "E2E_ID must be 1-8 lowercase letters or digits"
ns="npe2e-$id"
state="${E2E_STATE_ROOT:-/tmp}/netpol-e2e-$id"
[[ ! -e "$state" && ! -e "/run/netns/$ns" ]] || die "$state or netns $ns exists already: run down.sh $state or pick another E2E_ID"
node_ip=10.250.0.10
node="node-$id"
mkdir -p "$state"/{pki,logs,pids}
# Node I's name, address, namespace, folder, cgroup and pod range; the first node is the control plane's
# namespace and the state folder itself, and its file and process names carry no suffix.
node_suffix() { [[ $1 == 1 ]] || echo "-$1"; }
node_names=() node_ips=() node_netnses=() node_dirs=() node_cgroups=()
for (( i = 1; i <= node_count; i++ )); do
  sfx=$(node_suffix "$i")
  node_names+=("$([[ $i == 1 ]] && echo "$node" || echo "node$i-$id")")
  node_ips+=("10.250.0.$(( 9 + i ))")
  node_netnses+=("$ns$sfx")
  node_dirs+=("$([[ $i == 1 ]] && echo "$state" || echo "$state/node$i")")
  node_cgroups+=("npe2e-$id$sfx")
done

# From here on, a failure or an interrupt removes everything started so far.
started_ok=false
on_exit() {
  local rc=$?
  $started_ok && return 0
  if [[ $rc == 130 ]]; then
    log "interrupted; tearing down"
  else
    # The processes' logs outlive a failed start-up, to say why.
    log "start-up failed (exit $rc); tearing down, the processes' logs kept in ${state}.failed-logs"
    cp -r "$state/logs" "${state}.failed-logs" 2>/dev/null || true
  fi
  "$here/down.sh" "$state" >&2 || true
  exit 1
}
trap on_exit EXIT
trap 'exit 130' INT TERM

cat > "$state/meta.sh" <<META
E2E_ID=$id
E2E_MODE=$mode
E2E_NETNS=$ns
E2E_NETNS_PATH=/run/netns/$ns
E2E_NODE_IP=$node_ip
E2E_NODE_NAME=$node
E2E_VETH=npe2e${id}a
E2E_VETH_PEER=npe2e${id}b
E2E_BIN=$bin
E2E_STATE=$state
E2E_CGROUP=npe2e-$id
E2E_CNI_NETWORK=npe2e-$id
KUBECONFIG=$state/pki/admin.kubeconfig
E2E_NODE_COUNT=$node_count
E2E_NODE_NAMES="${node_names[*]}"
E2E_NODE_IPS="${node_ips[*]}"
E2E_NODE_NETNSES="${node_netnses[*]}"
E2E_NODE_DIRS="${node_dirs[*]}"
E2E_CGROUPS="${node_cgroups[*]}"
META
in_ns() { nsenter --net="/run/netns/$ns" "$@"; }

# Starts a daemon in a node's namespace (the first's by default), in its own session (a Ctrl-C on the
# terminal reaches only this script, whose trap stops the daemons in order), recording its PID for down.sh.
start_in() { # NETNS NAME COMMAND...
  local netns=$1 name=$2; shift 2
  setsid nsenter --net="/run/netns/$netns" "$@" > "$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$state/pids/$name"
}
start() { start_in "$ns" "$@"; }
# Waits until COMMAND succeeds, failing if the daemon NAME died or SECONDS passed.
wait_for() { # NAME SECONDS COMMAND...
  local name=$1 limit=$2; shift 2
  local end=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    kill -0 "$(cat "$state/pids/$name")" 2>/dev/null || { tail -20 "$state/logs/$name.log" >&2; die "$name exited"; }
    [[ $(date +%s) -lt $end ]] || { tail -20 "$state/logs/$name.log" >&2; die "$name not ready after $limit s"; }
    sleep 0.2
  done
}

# The node: a namespace with the node IP on a veth whose peer stays inside it, unaddressed (kubelet refuses
# a loopback node IP; nothing links the namespace to the host's network).
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add "npe2e${id}a" type veth peer name "npe2e${id}b"
ip -n "$ns" addr add "$node_ip/24" dev "npe2e${id}a"
ip -n "$ns" link set "npe2e${id}a" up
ip -n "$ns" link set "npe2e${id}b" up
in_ns sysctl -qw net.ipv4.ip_forward=1
# A node has a default route, and hostNetwork pods need one: a connection to a Service address (the agent's
# to https://10.96.0.1, the in-cluster API server) is routed before kube-proxy's output hook rewrites it to
# the endpoint, and without a route it fails with ENETUNREACH. This one points at the veth, whose peer is
# in the same namespace, so nothing it carries leaves the node.
[[ $mode == full ]] && ip -n "$ns" route add default dev "npe2e${id}a"
# A second node: the veth's peer moves into its namespace and takes the second address; each node routes
# the other's pod range through that link (a routed CNI's job), and has its default route on it too.
if (( node_count == 2 )); then
  ns2=${node_netnses[1]}
  ip netns add "$ns2"
  ip -n "$ns2" link set lo up
  ip -n "$ns" link set "npe2e${id}b" netns "$ns2"
  ip -n "$ns2" addr add "${node_ips[1]}/24" dev "npe2e${id}b"
  ip -n "$ns2" link set "npe2e${id}b" up
  ip -n "$ns2" route add default dev "npe2e${id}b"
  nsenter --net="/run/netns/$ns2" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$ns" route add 10.244.1.0/24 via "${node_ips[1]}"
  ip -n "$ns2" route add 10.244.0.0/24 via "$node_ip"
fi

make_pki "$state/pki" "$node" "$node_ip"
p=$state/pki
for user in admin controller-manager scheduler kubelet kube-proxy; do
  write_kubeconfig "$p/$user.kubeconfig" https://127.0.0.1:6443 "$p/ca.crt" "cert:$p/$user"
done
# The other nodes reach the API server at the first node's address.
for (( i = 2; i <= node_count; i++ )); do
  sfx=$(node_suffix "$i")
  node_certs "$p" "$sfx" "${node_names[i-1]}" "${node_ips[i-1]}"
  write_kubeconfig "$p/kubelet$sfx.kubeconfig" "https://$node_ip:6443" "$p/ca.crt" "cert:$p/kubelet$sfx"
  write_kubeconfig "$p/kube-proxy$sfx.kubeconfig" "https://$node_ip:6443" "$p/ca.crt" "cert:$p/kube-proxy"
done
printf '#!/bin/sh\nexec nsenter --net=/run/netns/%s %s/kubectl --kubeconfig=%s "$@"\n' "$ns" "$bin" "$p/admin.kubeconfig" > "$state/kubectl"
chmod +x "$state/kubectl"
kubectl() { "$state/kubectl" "$@"; }

start etcd "$bin/etcd" --name default --data-dir "$state/etcd" --unsafe-no-fsync \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster default=http://127.0.0.1:2380 --log-level warn
wait_for etcd 30 in_ns "$bin/etcdctl" --endpoints=http://127.0.0.1:2379 endpoint health

start kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
  --secure-port=6443 --bind-address=0.0.0.0 --advertise-address="$node_ip" \
  --service-cluster-ip-range=10.96.0.0/24 --authorization-mode=Node,RBAC --allow-privileged=true \
  --client-ca-file="$p/ca.crt" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
  --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority="$p/ca.crt" --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
  --profiling=false --cert-dir="$state/apiserver-certs"
wait_for kube-apiserver 90 kubectl get --raw /readyz

controllers='*'
[[ $mode == control-plane ]] && controllers='*,-pod-garbage-collector-controller,-node-lifecycle-controller'
start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$p/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$p/controller-manager.kubeconfig" --authorization-kubeconfig="$p/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials \
  --service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
  --cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
  --controllers="$controllers" --profiling=false
wait_for kube-controller-manager 60 kubectl get serviceaccount default -n default

# Node I: containerd, kubelet and kube-proxy in its namespace, with its own folders, cgroup root and pod
# range; the images imported into its containerd.
start_node() { # I
  local i=$1 sfx dir netns name ip cgroup pod_cidr hierarchy archive
  sfx=$(node_suffix "$i"); dir=${node_dirs[i-1]}; netns=${node_netnses[i-1]}; name=${node_names[i-1]}
  ip=${node_ips[i-1]}; cgroup=${node_cgroups[i-1]}; pod_cidr="10.244.$(( i - 1 )).0/24"
  # containerd with its own root, state, socket and runc root; restrict_oom_score_adj because root lacks
  # CAP_SYS_RESOURCE here (runc cannot lower oom_score_adj). The opt plugin's path would default to /opt.
  mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/runc"
  cat > "$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/pause:e2e"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
  # The bridge CNI (no policy enforcement of its own) on the node's pod range; host-local keeps its leases
  # in the node's folder. One network name for the cluster (down.sh removes its CNI cache entries).
  cat > "$dir/cni/net.d/10-bridge.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "npe2e-$id",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$dir/cni/ipam", "ranges": [[{"subnet": "$pod_cidr"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  start_in "$netns" "containerd$sfx" containerd --config "$dir/containerd/config.toml"
  wait_for "containerd$sfx" 30 command ctr --address "$dir/containerd/containerd.sock" version
  # DIR/ctr: ctr on this node's containerd, in the namespace kubelet uses.
  printf '#!/bin/sh\nexec ctr --address %s -n k8s.io "$@"\n' "$dir/containerd/containerd.sock" > "$dir/ctr"
  chmod +x "$dir/ctr"
  for archive in "$E2E_CACHE"/images/{pause,busybox,nginx,coredns}.tar "${extra_images[@]}"; do
    "$dir/ctr" images import "$archive" >/dev/null
  done

  # Its own cgroup root in every v1 hierarchy, so two nodes or clusters on one machine never share kubepods.
  for hierarchy in /sys/fs/cgroup/*/; do
    [[ $hierarchy == */unified/ ]] && continue
    mkdir -p "$hierarchy/$cgroup"
    if [[ -f "$hierarchy/cpuset.cpus" ]]; then
      cat "$hierarchy/cpuset.cpus" > "$hierarchy/$cgroup/cpuset.cpus"
      cat "$hierarchy/cpuset.mems" > "$hierarchy/$cgroup/cpuset.mems"
    fi
  done
  mkdir -p "$dir/kubelet" "$dir/pod-logs"
  cat > "$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $p/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
resolvConf: ""
podCIDR: $pod_cidr
podLogsDir: $dir/pod-logs
tlsCertFile: $p/kubelet-serving$sfx.crt
tlsPrivateKeyFile: $p/kubelet-serving$sfx.key
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  start_in "$netns" "kubelet$sfx" "$bin/kubelet" --config="$dir/kubelet.yaml" --kubeconfig="$p/kubelet$sfx.kubeconfig" \
    --root-dir="$dir/kubelet" --hostname-override="$name" --node-ip="$ip"

  cat > "$dir/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $p/kube-proxy$sfx.kubeconfig}
hostnameOverride: $name
clusterCIDR: 10.244.0.0/16
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zero leaves the conntrack table size and timeouts alone: nf_conntrack_max is shared with the host.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  start_in "$netns" "kube-proxy$sfx" "$bin/kube-proxy" --config="$dir/kube-proxy.yaml"
}

if [[ $mode == full ]]; then
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$p/scheduler.kubeconfig" \
    --authentication-kubeconfig="$p/scheduler.kubeconfig" --authorization-kubeconfig="$p/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false

  # containerd writes shim sockets under /run/containerd; down.sh removes the folders it created.
  [[ -e /run/containerd ]] || touch "$state/created-run-containerd"
  # kubelet changes these global sysctls; down.sh restores them.
  for key in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes; do
    echo "$key=$(sysctl -n "$key")"
  done > "$state/sysctls.orig"
  for (( i = 1; i <= node_count; i++ )); do start_node "$i"; done
  for (( i = 1; i <= node_count; i++ )); do
    wait_for "kubelet$(node_suffix "$i")" 90 kubectl wait --for=condition=Ready "node/${node_names[i-1]}" --timeout=1s
  done
  kubectl apply -f "$here/coredns.yaml" >/dev/null
  wait_for kubelet 120 kubectl -n kube-system rollout status deployment/coredns --timeout=2s
fi

started_ok=true
t_end=$(date +%s.%N)
seconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log "cluster $id up ($mode) in $(seconds "$t_built" "$t_end") s, after $(seconds "$t_start" "$t_built") s checking the build and images"
log "kubectl: $state/kubectl get pods -A    teardown: $here/down.sh $state"
echo "$state"
