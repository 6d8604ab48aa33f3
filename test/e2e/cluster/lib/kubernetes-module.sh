# A throwaway Go module that can build packages of k8s.io/kubernetes: that module is not importable as a
# library (its go.mod requires every staging module at v0.0.0), so the throwaway module requires it and
# replaces each staging module (the `=> ./staging/src/...` lines of its replace block) by its published tag.
# Usage: . lib/kubernetes-module.sh; kubernetes_module DIR MODULE_NAME K8S_VERSION   (DIR is emptied first)
kubernetes_module() {
  local dir=$1 name=$2 version=$3 upstream_mod m
  local staging_version=v0.${version#v1.}
  rm -rf "$dir"; mkdir -p "$dir"
  (
    cd "$dir"
    go mod init "$name" >/dev/null 2>&1
    upstream_mod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    mapfile -t staging < <(sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$upstream_mod")
    [[ ${#staging[@]} -gt 20 ]] || die "found only ${#staging[@]} staging modules in $upstream_mod"
    for m in "${staging[@]}"; do go mod edit -replace="$m=$m@$staging_version"; done
  )
}

# The -X flags that make Kubernetes binaries report VERSION instead of v0.0.0-master.
kubernetes_version_ldflags() { # VERSION
  local pkg minor=${1#v1.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' "$pkg" "$1" "$pkg" "$pkg" "$minor" "$pkg"
  done
}
