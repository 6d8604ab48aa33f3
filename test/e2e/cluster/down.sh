#!/usr/bin/env bash
# Removes a cluster started by up.sh and verifies nothing is left: processes (by PID), pod network
# namespaces, mounts, the node namespace, cgroups, CNI and kubelet/containerd folders; restores the
# sysctls kubelet changed. Exits non-zero if anything remains.
#   down.sh STATE_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
state=${1:?usage: down.sh STATE_DIR}
[[ -f "$state/meta.sh" ]] || die "$state is not a cluster state folder (no meta.sh)"
. "$state/meta.sh"
t0=$(date +%s.%N)
# A Ctrl-C during teardown must not leave half a cluster: finish instead.
trap 'log "interrupted: finishing the teardown first"' INT TERM
# Whoever reads our stderr may be gone (an interrupted test runner): lose the messages, not the teardown.
trap '' PIPE

pid_of() { [[ -f "$state/pids/$1" ]] && cat "$state/pids/$1"; }
# A zombie (killed, not yet reaped by its parent) counts as gone.
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null && ! grep -qs '^State:.*Z' "/proc/$1/status"; }
# SIGTERM to all, then SIGKILL to those still alive after SECONDS.
stop_pids() { # SECONDS PID...
  local limit=$1 waited=0 pid left; shift
  for pid in "$@"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null; done
  while (( waited < limit * 10 )); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    (( left )) || return 0
    sleep 0.1; waited=$(( waited + 1 ))
  done
  for pid in "$@"; do alive "$pid" && kill -KILL "$pid" 2>/dev/null; done
  # SIGKILL takes effect asynchronously (a process with many threads takes a moment to exit).
  for (( waited = 0; waited < 50; waited++ )); do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    (( left )) || return 0
    sleep 0.1
  done
  return 0
}
stop() { # SECONDS NAME...
  local t limit=$1 pids=() name; t=$(date +%s.%N); shift
  for name in "$@"; do pids+=("$(pid_of "$name")"); done
  stop_pids "$limit" "${pids[@]}"
  phase "stop $*" "$t"
}
# PIDs of live processes whose command line contains TEXT (not counting the grep that looks).
pids_with_arg() { # TEXT
  local f pid
  for f in $(grep -lsF -- "$1" /proc/[0-9]*/cmdline); do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    alive "$pid" && echo "$pid"
  done
  return 0
}
# With E2E_DEBUG=1, how long each phase took.
phase() { [[ ${E2E_DEBUG:-} == 1 ]] && log "  $1: $(awk -v a="$2" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"; return 0; }
netns_inode() { stat -L -c %i "$1" 2>/dev/null; }
# Each node's namespace, folder and cgroup (the first node's are the cluster's own; a state folder of a
# one-node version of up.sh has no lists).
read -r -a netnses <<< "${E2E_NODE_NETNSES:-$E2E_NETNS}"
read -r -a node_dirs <<< "${E2E_NODE_DIRS:-$state}"
read -r -a cgroups <<< "${E2E_CGROUPS:-$E2E_CGROUP}"
# The suffix of node I's process names (pids/kubelet, pids/kubelet-2...).
node_suffix() { [[ $1 == 1 ]] || echo "-$1"; }
node_names_of() { # BASENAME: that process's name on every node
  local i; for (( i = 1; i <= ${#node_dirs[@]}; i++ )); do echo "$1$(node_suffix "$i")"; done
}
cgroup_dirs() { local h c; for h in /sys/fs/cgroup/*/; do for c in "${cgroups[@]}"; do [[ -d "$h$c" ]] && echo "$h$c"; done; done; }

# 1. While kubelet and the API server live, delete the workloads and pods: kubelet stops them and the CNI
#    removes their network namespaces and leases, the normal way.
if alive "$(pid_of kubelet)" && alive "$(pid_of kube-apiserver)"; then
  k="$state/kubectl"
  "$k" delete deployments,daemonsets,replicasets,statefulsets,jobs --all --all-namespaces --wait=false --timeout=10s >/dev/null 2>&1
  "$k" delete pods --all --all-namespaces --grace-period=1 --timeout=45s >/dev/null 2>&1 \
    || log "some pods did not go away in 45 s; removing them by force below"
  phase "delete pods" "$t0"
fi

# 2. Pod network namespaces still mounted: those of the pod sandboxes containerd knows, and those a
#    process in our cgroups holds (if containerd is already gone).
pod_netns=()
for (( i = 1; i <= ${#node_dirs[@]}; i++ )); do
  alive "$(pid_of "containerd$(node_suffix "$i")")" || continue
  ctr_() { ctr --address "${node_dirs[i-1]}/containerd/containerd.sock" -n k8s.io "$@"; }
  for c in $(ctr_ containers list -q 2>/dev/null); do
    while read -r path; do pod_netns+=("$path"); done < <(ctr_ containers info "$c" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' | sort -u)
  done
done
our_net_inodes=()
for dir in $(cgroup_dirs); do
  for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do
    our_net_inodes+=("$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null)")
  done
done
for path in /run/netns/cni-*; do
  [[ -e "$path" ]] || continue
  inode=$(netns_inode "$path")
  for i in "${our_net_inodes[@]}"; do [[ -n "$i" && "$i" == "$inode" ]] && pod_netns+=("$path"); done
done

# 3. Processes by PID, the node agents first, the API server and etcd last.
# shellcheck disable=SC2046 # one name per line
stop 10 $(node_names_of kube-proxy) $(node_names_of kubelet) kube-scheduler kube-controller-manager
# Every process left in our cgroups is a container (pause and workloads): kill them, then containerd and
# the shims that served our containerd (found by its socket path, unique to this cluster).
for round in 1 2 3; do
  pids=$(for dir in $(cgroup_dirs); do find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
  [[ -z "$pids" ]] && break
  kill -KILL $pids 2>/dev/null; sleep 0.3
done
# shellcheck disable=SC2046 # one name per line
stop 10 $(node_names_of containerd)
t=$(date +%s.%N)
shims=()
for dir in "${node_dirs[@]}"; do
  for pid in $(pids_with_arg "$dir/containerd/containerd.sock"); do
    grep -qsF containerd-shim "/proc/$pid/cmdline" && shims+=("$pid")
  done
done
stop_pids 3 "${shims[@]}"
phase "stop ${#shims[@]} shims" "$t"
# The API server first: stopped together with etcd, it waits on etcd until killed.
stop 10 kube-apiserver
stop 10 etcd
t=$(date +%s.%N)

# 4. Mounts under the state folder (overlay rootfs, shm, kubelet volumes), deepest first; pod namespaces.
for attempt in 1 2; do
  mapfile -t mounts < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
for path in $(printf '%s\n' "${pod_netns[@]}" | sed 's#^/var/run/#/run/#' | sort -u); do
  umount "$path" 2>/dev/null; rm -f "$path"
done
for netns in "${netnses[@]}"; do
  [[ -e "/run/netns/$netns" ]] && ip netns delete "$netns"
done

# 5. Cgroups, deepest first (only empty ones can go).
for dir in $(cgroup_dirs); do
  find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null
done

# 6. Files outside the state folder: CNI result cache entries of our network, kubelet's container log
#    symlinks into our pod logs, and /run/containerd if this cluster's containerd created it.
rm -f /var/lib/cni/results/"$E2E_CNI_NETWORK"-* 2>/dev/null
for link in /var/log/containers/*.log; do
  [[ -L "$link" && $(readlink "$link") == "$state/"* ]] && rm -f "$link"
done
if [[ -f "$state/created-run-containerd" && -d /run/containerd ]]; then
  find /run/containerd -depth -type d -empty -delete 2>/dev/null
fi
for d in /var/lib/cni/results /var/lib/cni /var/log/containers; do rmdir "$d" 2>/dev/null; done

phase "mounts, namespaces, cgroups, files" "$t"
# 7. Sysctls kubelet changed.
if [[ -f "$state/sysctls.orig" ]]; then
  while IFS== read -r key value; do
    [[ $(sysctl -n "$key") == "$value" ]] || sysctl -qw "$key=$value"
  done < "$state/sysctls.orig"
fi

# 8. Verify, then remove the state folder.
left=()
for f in "$state"/pids/*; do [[ -f "$f" ]] && alive "$(cat "$f")" && left+=("process ${f##*/} ($(cat "$f"))"); done
for pid in $(pids_with_arg "$state/"); do
  left+=("process $pid: $(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)")
done
while read -r m; do left+=("mount $m"); done < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)
for path in "${pod_netns[@]}"; do [[ -e "${path/#\/var\/run/\/run}" ]] && left+=("pod netns $path"); done
for netns in "${netnses[@]}"; do [[ -e "/run/netns/$netns" ]] && left+=("netns $netns"); done
for dir in $(cgroup_dirs); do left+=("cgroup $dir"); done
ls /var/lib/cni/results/"$E2E_CNI_NETWORK"-* >/dev/null 2>&1 && left+=("CNI results of $E2E_CNI_NETWORK")
if [[ -f "$state/sysctls.orig" ]]; then
  while IFS== read -r key value; do
    [[ $(sysctl -n "$key") == "$value" ]] || left+=("sysctl $key=$(sysctl -n "$key"), was $value")
  done < "$state/sysctls.orig"
fi
if [[ ${#left[@]} -eq 0 ]]; then
  rm -rf "$state" || left+=("state folder $state")
fi
seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
if [[ ${#left[@]} -gt 0 ]]; then
  log "teardown of $E2E_ID in $seconds s left behind:"
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
log "cluster $E2E_ID removed in $seconds s; nothing left"
