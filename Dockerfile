# llmd-ts container image: one image for every process (`llmd epp`, `llmd router`, `llmd serve`,
# `llmd sidecar`, …). Multi-stage: the build stage has the dev dependencies (TypeScript) and
# compiles src/ → dist/; the runtime stage installs production dependencies only.
#
# Native packages (zeromq, node-llama-cpp) use their prebuilt binaries; install scripts stay
# disabled (--ignore-scripts), as in development.
#
#   docker build -t ghcr.io/llmd-ts/llmd:0.1.0 .
#   docker run --rm ghcr.io/llmd-ts/llmd:0.1.0 epp --help

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY proto ./proto
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts \
 && npm cache clean --force \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin llmd
COPY bin ./bin
# The ext_proc and gRPC health .proto files are loaded at run time from /app/proto.
COPY proto ./proto
COPY --from=build /app/dist ./dist
USER 10001:10001
# ext_proc gRPC, gRPC health, EPP metrics, model server / sidecar, router
EXPOSE 9002 9003 9090 8000 8080
ENTRYPOINT ["node", "bin/llmd.js"]
CMD ["--help"]
