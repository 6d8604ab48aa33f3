# netpol-agent: the image the DaemonSet in manifests/ runs.
#
#   docker build -t netpol-agent:0.1.0 .
#
# Needs BuildKit (the default builder since Docker 23; DOCKER_BUILDKIT=1 before). Behind a
# TLS-intercepting proxy, hand npm the proxy's CA certificates (PEM, concatenated) as a secret; the
# build stage reads it and the runtime image never contains it:
#
#   docker build --secret id=extra-ca,src=/path/to/ca-bundle.pem -t netpol-agent:0.1.0 .
#
# scripts/image/build.sh builds it on machines without an image registry (local stand-ins for the two
# base images) and saves it for `ctr images import`.

ARG NODE_IMAGE=node:20-bookworm-slim
ARG GO_IMAGE=golang:1.26-bookworm

# The chained CNI plugin (cni-plugin/, copied to the node by `netpol-agent cni-install`): static
# (CGO_ENABLED=0, it runs on the host), from the vendored modules, with no network.
FROM ${GO_IMAGE} AS plugin
WORKDIR /src/cni-plugin
COPY cni-plugin/ ./
RUN CGO_ENABLED=0 GOFLAGS=-mod=vendor GOPROXY=off go build -trimpath -ldflags='-s -w' -o build/netpol-agent-cni .

# Build: the addon (node-gyp against the base image's Node headers and libnftables) and the
# TypeScript, then the production dependencies only.
FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ make python3 libnftables-dev \
 && rm -rf /var/lib/apt/lists/*
# The official node images keep Node's headers in /usr/local/include/node: node-gyp builds against
# them instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json ./
COPY native/ native/
RUN --mount=type=secret,id=extra-ca \
    if [ -s /run/secrets/extra-ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/extra-ca; fi \
 && npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
# Type declarations, source maps and docs of the dependencies are never loaded at run time: 45 of
# the 87 MB of node_modules (@kubernetes/client-node ships all three).
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules/ -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \) -delete

# Runtime: Node 20 and libnftables; no compiler, no npm cache, no sources.
FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends libnftables1 \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /opt/netpol-agent/bin/netpol-agent /usr/local/bin/netpol-agent
WORKDIR /opt/netpol-agent
COPY --from=build /src/package.json ./
# node_modules/nftables-napi is a link to ../native: the addon's loader and its compiled module.
COPY --from=build /src/node_modules/ node_modules/
COPY --from=build /src/native/package.json /src/native/index.js native/
COPY --from=build /src/native/build/Release/nftables_napi.node native/build/Release/
COPY --from=plugin /src/cni-plugin/build/netpol-agent-cni cni-plugin/build/
COPY --from=build /src/build/src/ build/src/
COPY bin/ bin/
ENV NODE_ENV=production
# Root, with the capabilities the DaemonSet grants (only NET_ADMIN): a non-root user with NET_ADMIN
# added gets it only in its bounding set (container runtimes set no ambient capabilities), and
# libnftables then fails with "cache initialization failed: Operation not permitted".
USER root
ENTRYPOINT ["netpol-agent"]
CMD ["run"]
