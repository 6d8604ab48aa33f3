#!/usr/bin/env bash
# A private Docker daemon (Debian's docker.io) for building and running the image on a machine that
# shares its host with other work: its own containerd, data root, exec root, pid files and unix
# sockets; no bridge, no iptables rules, IP forwarding left alone; nothing listens on TCP.
#
#   dockerd.sh start        -> prints the state directory; the daemon answers on STATE/docker.sock
#   dockerd.sh stop STATE   -> stops both daemons and removes STATE (and a temporary data root)
#
# The data root (images, BuildKit cache) is .cache/image/docker so rebuilds are quick. One daemon at a
# time can own it: the daemon holds a lock on it while it runs, and a second start while it is busy
# gets a temporary data root instead (slower, removed at stop).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$repo/.cache/image"

need() { command -v "$1" >/dev/null || { echo "dockerd.sh: $1 is missing: apt-get install docker.io" >&2; exit 1; }; }

# Waits for a unix socket to answer docker's API, up to $2 seconds.
wait_for_docker() {
  local deadline=$((SECONDS + $2))
  until /usr/bin/docker -H "unix://$1" version >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# Sends SIGTERM to the process in a pid file and waits for it to exit (SIGKILL after $2 seconds).
stop_pidfile() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 0
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "dockerd.sh: run as root" >&2; exit 1; }
  need dockerd; need containerd; need /usr/bin/docker
  local state data
  state="$(mktemp -d /tmp/netpol-dockerd.XXXXXX)"
  mkdir -p "$cache"
  # The lock is held by the daemon's own file descriptor 9 for as long as dockerd lives.
  exec 9>>"$cache/docker.lock"
  if flock -n 9; then
    data="$cache/docker"
  else
    data="$state/data"
    echo "dockerd.sh: $cache/docker is in use by another daemon; using a temporary data root" >&2
  fi
  echo "$data" >"$state/data-root"
  mkdir -p "$data"

  cat >"$state/containerd.toml" <<EOF
version = 2
root = "$data/containerd"
state = "$state/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$state/containerd.sock"
[ttrpc]
  address = "$state/containerd.ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$data/containerd-opt"
EOF
  containerd --config "$state/containerd.toml" >"$state/containerd.log" 2>&1 9>&- &
  echo $! >"$state/containerd.pid"

  echo '{}' >"$state/daemon.json"
  dockerd --config-file "$state/daemon.json" \
    --containerd "$state/containerd.sock" \
    --data-root "$data/docker" --exec-root "$state/exec" --pidfile "$state/dockerd.pid" \
    -H "unix://$state/docker.sock" \
    --bridge=none --iptables=false --ip-forward=false --ip-masq=false --userland-proxy=false \
    --storage-driver=overlay2 >"$state/dockerd.log" 2>&1 &
  exec 9>&-
  if ! wait_for_docker "$state/docker.sock" 60; then
    echo "dockerd.sh: the daemon did not answer within 60 s; last lines of its log:" >&2
    tail -15 "$state/dockerd.log" >&2
    stop "$state"
    exit 1
  fi
  echo "$state"
}

stop() {
  local state="$1"
  [ -d "$state" ] && [ -f "$state/containerd.toml" ] || { echo "dockerd.sh: $state is not a state directory of dockerd.sh" >&2; exit 1; }
  stop_pidfile "$state/dockerd.pid" 30
  stop_pidfile "$state/containerd.pid" 15
  # Left over only when a daemon was killed: mounts under the state or a temporary data root.
  { grep -o " $state[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$state"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:?usage: dockerd.sh stop STATE}" ;;
  *) echo "usage: dockerd.sh start | stop STATE" >&2; exit 2 ;;
esac
