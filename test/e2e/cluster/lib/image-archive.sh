#!/usr/bin/env bash
# Writes a one-layer docker-save archive (what `docker save` produces and `ctr images import` reads):
#   manifest.json, <config digest>.json whose rootfs.diff_ids is the layer's sha256, <diff id>/layer.tar.
# Owners 0:0, mtime 0 and sorted names make the archive a function of the root filesystem's content.
# Usage: image-archive.sh OUT.tar TAG ROOTFS_DIR CONFIG_JSON
#   CONFIG_JSON is the image's "config" object, e.g. '{"Entrypoint":["/pause"]}'.
set -euo pipefail
out=$1 tag=$2 rootfs=$3 config=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
reproducible_tar=(tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=gnu)
"${reproducible_tar[@]}" -C "$rootfs" -cf "$tmp/layer.tar" .
diff_id=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
mkdir "$tmp/$diff_id"
mv "$tmp/layer.tar" "$tmp/$diff_id/layer.tar"
printf '{"architecture":"amd64","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$config" "$diff_id" > "$tmp/config.json"
config_id=$(sha256sum "$tmp/config.json" | cut -d' ' -f1)
mv "$tmp/config.json" "$tmp/$config_id.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$tag" "$diff_id" > "$tmp/manifest.json"
"${reproducible_tar[@]}" -C "$tmp" -cf "$out.partial" manifest.json "$config_id.json" "$diff_id"
mv "$out.partial" "$out"
