# syntax=docker/dockerfile:1
# The three services, built once, one small image each:
#
#   docker build --target gateway -t signup/gateway .
#   docker build --target registration-service -t signup/registration-service .
#   docker build --target dlq-worker -t signup/dlq-worker .
#
# or all of them with the broker and the database: `docker compose up --build` (compose.yaml).
# Where no image registry is reachable, scripts/container-images.sh builds them with
# RUNTIME_BASE=<its Debian base> and BINARIES=prebuilt: see README, "Docker / containers".

# Same Rust as the machines that test this workspace; bookworm = the Debian of those machines,
# so the OpenSSL the binaries link is the one they are tested with.
ARG RUST_VERSION=1.95
# The image the services run on: any Debian 12 (bookworm) with apt.
ARG RUNTIME_BASE=debian:bookworm-slim
# Where the binaries come from: `build` compiles them below; `prebuilt` takes the ones in
# .local/container-bin/ (built on a bookworm host, put there by scripts/container-images.sh).
ARG BINARIES=build
FROM rust:${RUST_VERSION}-bookworm AS build
# librdkafka (TLS, SASL) links the system OpenSSL: headers and pkg-config, like
# scripts/ensure-build-deps.sh on a bare machine. build-essential and zlib come with the image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The commit, for the `revision` label of each service's `<prefix>_build_info` on /metrics
# (`--build-arg GIT_COMMIT=$(git rev-parse HEAD)`); empty, the label is left out.
ARG GIT_COMMIT=""
ENV GIT_COMMIT=${GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway -p registration-service -p dlq-worker \
 && mkdir -p /out \
 && cp target/release/gateway target/release/registration-service target/release/dlq-worker /out/

FROM scratch AS prebuilt
COPY .local/container-bin/ /out/

FROM ${BINARIES} AS binaries

FROM ${RUNTIME_BASE} AS runtime
# libssl3: librdkafka's TLS; ca-certificates: the trust store rustls (database) and OpenSSL
# (Kafka) verify a managed service's certificate against when no CA file is configured.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
USER 10001
# One JSON object per log line, with trace_id/span_id when OTEL_EXPORTER_OTLP_ENDPOINT is set.
ENV LOG_FORMAT=json

FROM runtime AS gateway
COPY --from=binaries /out/gateway /usr/local/bin/gateway
ENV GATEWAY_ADDR=0.0.0.0:8080
# The internal listener (/metrics, /healthz, /readyz): for the orchestrator and Prometheus,
# never for the internet.
ENV GATEWAY_INTERNAL_ADDR=0.0.0.0:8083
EXPOSE 8080 8083
ENTRYPOINT ["/usr/local/bin/gateway"]

FROM runtime AS registration-service
COPY --from=binaries /out/registration-service /usr/local/bin/registration-service
ENV REGISTRATION_SERVICE_ADDR=0.0.0.0:8081
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/registration-service"]

FROM runtime AS dlq-worker
COPY --from=binaries /out/dlq-worker /usr/local/bin/dlq-worker
ENV DLQ_WORKER_ADDR=0.0.0.0:8082
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/dlq-worker"]
