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

pid_of() { [[ -f "$state/pids/$1" ]] && cat "$state/pids/$1"; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
# SIGTERM, then SIGKILL after SECONDS.
stop_pid() { # PID SECONDS
  local pid=$1 waited=0
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null
  while alive "$pid" && (( waited < $2 * 10 )); do sleep 0.1; waited=$(( waited + 1 )); done
  alive "$pid" && { kill -KILL "$pid" 2>/dev/null; sleep 0.1; }
  return 0
}
stop() { stop_pid "$(pid_of "$1")" "${2:-10}"; }
netns_inode() { stat -L -c %i "$1" 2>/dev/null; }
sock="$state/containerd/containerd.sock"
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }
cgroup_dirs() { for h in /sys/fs/cgroup/*/; do [[ -d "$h$E2E_CGROUP" ]] && echo "$h$E2E_CGROUP"; done; }

# 1. While kubelet and the API server live, delete the workloads and pods: kubelet stops them and the CNI
#    removes their network namespaces and leases, the normal way.
if alive "$(pid_of kubelet)" && alive "$(pid_of kube-apiserver)"; then
  k="$state/kubectl"
  "$k" delete deployments,daemonsets,replicasets,statefulsets,jobs --all --all-namespaces --wait=false --timeout=10s >/dev/null 2>&1
  "$k" delete pods --all --all-namespaces --grace-period=1 --timeout=45s >/dev/null 2>&1 \
    || log "some pods did not go away in 45 s; removing them by force below"
fi

# 2. Pod network namespaces still mounted: those of the pod sandboxes containerd knows, and those a
#    process in our cgroups holds (if containerd is already gone).
pod_netns=()
if alive "$(pid_of containerd)"; then
  for c in $(ctr_ containers list -q 2>/dev/null); do
    while read -r path; do pod_netns+=("$path"); done < <(ctr_ containers info "$c" 2>/dev/null | grep -o '/var/run/netns/cni-[0-9a-f-]*' | sort -u)
  done
fi
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
for name in kube-proxy kubelet kube-scheduler kube-controller-manager; do stop "$name"; done
# Every process left in our cgroups is a container (pause and workloads): kill them, then containerd and
# the shims that served our containerd (found by its socket path, unique to this cluster).
for round in 1 2 3; do
  pids=$(for dir in $(cgroup_dirs); do find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
  [[ -z "$pids" ]] && break
  kill -KILL $pids 2>/dev/null; sleep 0.3
done
stop containerd 10
for proc in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null) || continue
  [[ $cmd == *containerd-shim* && $cmd == *"$sock"* ]] && stop_pid "${proc#/proc/}" 3
done
for name in kube-apiserver etcd; do stop "$name"; done

# 4. Mounts under the state folder (overlay rootfs, shm, kubelet volumes), deepest first; pod namespaces.
for attempt in 1 2; do
  mapfile -t mounts < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done
for path in $(printf '%s\n' "${pod_netns[@]}" | sed 's#^/var/run/#/run/#' | sort -u); do
  umount "$path" 2>/dev/null; rm -f "$path"
done
[[ -e "/run/netns/$E2E_NETNS" ]] && ip netns delete "$E2E_NETNS"

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

# 7. Sysctls kubelet changed.
if [[ -f "$state/sysctls.orig" ]]; then
  while IFS== read -r key value; do
    [[ $(sysctl -n "$key") == "$value" ]] || sysctl -qw "$key=$value"
  done < "$state/sysctls.orig"
fi

# 8. Verify, then remove the state folder.
left=()
for f in "$state"/pids/*; do [[ -f "$f" ]] && alive "$(cat "$f")" && left+=("process ${f##*/} ($(cat "$f"))"); done
for proc in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null) || continue
  [[ $cmd == *"$state/"* ]] && left+=("process ${proc#/proc/}: ${cmd:0:120}")
done
while read -r m; do left+=("mount $m"); done < <(awk -v s="$state/" 'index($5, s) == 1 { print $5 }' /proc/self/mountinfo)
for path in "${pod_netns[@]}"; do [[ -e "${path/#\/var\/run/\/run}" ]] && left+=("pod netns $path"); done
[[ -e "/run/netns/$E2E_NETNS" ]] && left+=("netns $E2E_NETNS")
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
