# syntax=docker/dockerfile:1
# The slamon image: one binary for every service (`slamon etl|projector|query-api|
# sla-manager|init|replay|registry|up`). Multi-stage: dependencies are compiled in a
# layer of their own (cargo-chef), rebuilt only when Cargo.toml/Cargo.lock change.
#
#   docker build -t slamon .
#   docker run --rm slamon --help

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

# the recipe: the workspace's manifests and lock file, nothing else
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# dependencies only: this layer stays cached while only our code changes
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p slamon
COPY . .
RUN cargo build --release --locked -p slamon \
 && install -D -m 0755 target/release/slamon /out/slamon

FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 slamon \
 && useradd --system --uid 10001 --gid slamon --home-dir /var/lib/slamon --create-home slamon \
 && install -d -o 10001 -g 10001 -m 0700 /run/slamon
COPY --from=builder /out/slamon /usr/local/bin/slamon
# the replay tool is `slamon replay`; `replay` is kept as a name of its own for scripts
RUN printf '#!/bin/sh\nexec /usr/local/bin/slamon replay "$@"\n' >/usr/local/bin/replay \
 && chmod 0755 /usr/local/bin/replay
USER 10001:10001
WORKDIR /var/lib/slamon
ENV SLAMON_DATA_DIR=/var/lib/slamon \
    SLAMON_LOG_FORMAT=json \
    RUST_LOG=info
VOLUME ["/var/lib/slamon"]
EXPOSE 5000 5001 50052 8008 8010
# each service sets SLAMON_HEALTHCHECK_URL to its own endpoint (compose.yaml does)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["slamon", "healthcheck"]
ENTRYPOINT ["slamon"]
CMD ["up"]
