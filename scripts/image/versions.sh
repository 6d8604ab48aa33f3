# What the local stand-in for node:20-bookworm-slim holds (base-image.sh) and the names the image
# scripts share. Node 20.20's release tarball bundles npm 10.8.2 and corepack 0.34.1; the official
# image adds yarn 1.22.22.
NODE_VERSION=20.20.2
NPM_VERSION=10.8.2
COREPACK_VERSION=0.34.1
YARN_VERSION=1.22.22
# The recipe's revision: bump it when base-image.sh changes, so a cached tarball is rebuilt.
BASE_RECIPE=1
BASE_IMAGE=node:20-bookworm-slim
# The image config that `docker import` gives the root filesystem, as the official image has it.
BASE_IMAGE_CHANGES=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change "ENV NODE_VERSION=$NODE_VERSION"
  --change "ENV YARN_VERSION=$YARN_VERSION"
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]'
  --change 'CMD ["node"]'
)
