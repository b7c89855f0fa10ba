# The app image that GSC turns into a Gramine Shielded Container: the proxy built from this
# repository, its production dependencies, the enclave config and the MCP server it wraps.
#
#   docker build -f Dockerfile.gsc -t attestable-mcp-app .      # scripts/gsc-build does this,
#   gsc build ... && gsc sign-image ...                          # then GSC (gsc-attestable-mcp-app)
#
# Everything in the final image is hashed into the enclave's measurement by GSC, so it holds
# nothing else: no sources, no dev dependencies, no npm, no secrets, no dev PKI. Only named paths
# are copied from the build context (never the whole context, which may hold .attestable-mcp/).
#
# Base: the current Node LTS on Debian 12 (bookworm), a distro Gramine/GSC support
# (gsc.config.yaml: Distro "debian:12"). Pinned to an exact version: a new Node is a new
# measurement, so it changes only when this line does. For bit-for-bit rebuilds pin the digest
# too (node:24.20.0-bookworm-slim@sha256:...), as printed by `docker buildx imagetools inspect`.

# ---- build: compile the TypeScript --------------------------------------------------------
FROM node:24.20.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` would build before the sources are here; we build below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY proxy ./proxy
RUN npx tsc -p tsconfig.json && test -f dist/proxy/cli/main.js

# ---- deps: production dependencies and the MCP server --------------------------------------
FROM node:24.20.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Exactly the lockfile's production tree; no install scripts run.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# The MCP server to wrap, installed from npm into /app/mcp-server at an exact version.
# configs/enclave.yaml runs it as:
#   /usr/local/bin/node /app/mcp-server/node_modules/@modelcontextprotocol/server-everything/dist/index.js stdio
# Another npm server: docker build --build-arg MCP_SERVER_PACKAGE=<name>@<exact version> ...
# (scripts/gsc-build --mcp-server <name>@<version>), then change upstream.command in
# configs/enclave.yaml and the matching entry in enclave/attestable-mcp.manifest's
# sgx.trusted_files to its entry point.
# Your own server instead: replace this RUN with a COPY of it (with its lockfile) and install it
# the same way, e.g.
#   COPY my-mcp-server/ /app/mcp-server/
#   RUN cd /app/mcp-server && npm ci --omit=dev --ignore-scripts
# (or COPY a self-contained binary to /app/mcp-server/bin/), and change the same two places.
# A server that needs install scripts (native modules) needs them allowed here; anything it
# runs must be in the image, because the enclave can only open hashed files.
# Dependencies below the named package are resolved at build time (npm has no lockfile for it):
# two builds on different days can differ, and so can their MRENCLAVE. Use the COPY form with a
# lockfile for reproducible measurements.
ARG MCP_SERVER_PACKAGE=@modelcontextprotocol/server-everything@2026.8.31
RUN mkdir -p /app/mcp-server \
    && npm install --prefix /app/mcp-server --omit=dev --ignore-scripts --save-exact \
        --no-audit --no-fund "${MCP_SERVER_PACKAGE}"

# ---- final: what the enclave runs -----------------------------------------------------------
FROM node:24.20.0-bookworm-slim
# npm, npx, corepack and yarn are never run in the enclave: remove them so they are not part
# of the measured file set.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
        /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
        /root/.npm /tmp/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/package.json /app/package.json
COPY --from=deps /app/node_modules /app/node_modules
COPY --from=build /src/dist/proxy /app/dist/proxy
COPY configs/enclave.yaml /app/configs/enclave.yaml
COPY --from=deps /app/mcp-server /app/mcp-server
# The container runs as root, as GSC images usually do: the untrusted Gramine loader needs
# /dev/sgx_enclave, which hosts often give to root and group `sgx` only (mode 0660). The app
# itself runs inside the enclave, which does not care about the host uid. Files stay read-only
# to it anyway: GSC hashes them all as trusted files.
# TLS (RA-TLS, the MCP endpoint) and metrics, as in configs/enclave.yaml.
EXPOSE 8443 9464
# GSC serialises this into a trusted argv file: `docker run` arguments are ignored.
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/proxy/cli/main.js", "serve", "--config", "/app/configs/enclave.yaml"]
