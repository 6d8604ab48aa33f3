# Shared by the cluster scripts: the cache folder and messages.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
# Git-ignored (.cache/ in .gitignore); E2E_CACHE lets CI point several checkouts at one cache.
E2E_CACHE=${E2E_CACHE:-$repo_root/.cache/e2e}
mkdir -p "$E2E_CACHE"

log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
