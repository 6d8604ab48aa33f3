# What the local stand-ins for node:20-bookworm-slim (base-image.sh) and golang:1.26-bookworm
# (go-image.sh) hold, and the names the image scripts share. Node 20.20's release tarball bundles npm 10.8.2 and corepack 0.34.1; the official
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
# The Dockerfile's Go build stage (ARG GO_IMAGE there): the stand-in carries this machine's Go of
# that minor version, with the official image's environment.
GO_MINOR=1.26
GO_IMAGE="golang:$GO_MINOR-bookworm"
GO_IMAGE_CHANGES=(
  --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV GOPATH=/go'
  --change 'ENV GOTOOLCHAIN=local'
  --change "ENV GOLANG_VERSION=$(go env GOVERSION 2>/dev/null | sed 's/^go//')"
  --change 'WORKDIR /go'
)
