#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount with a token minted by the API server
# (`kubectl create token`, 1 h), and prints its path.
#   sa-kubeconfig.sh STATE_DIR NAMESPACE SERVICEACCOUNT [SERVER]
# SERVER defaults to https://127.0.0.1:6443 (inside the node's namespace); clients in namespaces routed to
# the node use https://<E2E_NODE_IP>:6443 (the serving certificate covers both).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/common.sh"
. "$here/lib/pki.sh"
state=${1:?usage: sa-kubeconfig.sh STATE_DIR NAMESPACE SERVICEACCOUNT [SERVER]}
namespace=${2:?namespace} name=${3:?serviceaccount} server=${4:-https://127.0.0.1:6443}
token=$("$state/kubectl" create token "$name" -n "$namespace" --duration=1h)
out="$state/pki/sa-$namespace-$name.kubeconfig"
write_kubeconfig "$out" "$server" "$state/pki/ca.crt" "token:$token"
echo "$out"
