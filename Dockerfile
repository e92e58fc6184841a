# syntax=docker/dockerfile:1
#
# esproxy container image.
#
#   docker build -t esproxy .
#   docker run -d --name esproxy -p 7200:7200 \
#     -v /etc/esproxy/esproxy.ini:/etc/esproxy/esproxy.ini:ro esproxy -c /etc/esproxy/esproxy.ini -n NODE
#
# Ports (documented; publish what your config uses):
#   7200/tcp  sensors (esProxyPort, HTTP or HTTPS with certFile/keyFile)
#   9100/tcp  Prometheus metrics and /healthz (esProxyMetricsPort=9100; the HEALTHCHECK below
#             probes it on loopback inside the container, so set esProxyMetricsPort=9100;
#             add esProxyMetricsHost=0.0.0.0 to let Prometheus scrape it from outside)
#
# The image ships no config: mount yours at /etc/esproxy/esproxy.ini (without one, esproxy
# refuses to start). Stop with SIGTERM (docker stop): in-flight bulks get esProxyGracePeriod
# seconds (default 10); give `docker stop -t` a little more than that.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# ---- build: the same cargo invocation as scripts/run-demo.sh, with the same Cargo.lock ----
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# cmake: Pingora's zlib-ng (libz-ng-sys) builds with it (what scripts/setup.sh installs in CI).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release --bin esproxy \
 && install -D -m 0755 target/release/esproxy /out/esproxy

# ---- runtime: slim Debian, CA roots for https:// Elasticsearch, non-root user ----
FROM debian:${DEBIAN_RELEASE}-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 esproxy \
 && useradd --system --uid 10001 --gid esproxy --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin esproxy \
 && mkdir -p /etc/esproxy
COPY --from=build /out/esproxy /usr/local/bin/esproxy
USER 10001:10001
EXPOSE 7200/tcp 9100/tcp
# Liveness through the metrics listener's /healthz (no curl in a slim image: bash's /dev/tcp).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9100 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == *' 200 '* ]]"]
# SIGTERM drains in-flight requests (esProxyGracePeriod); SIGHUP (`docker kill -s HUP`) reloads.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/esproxy"]
CMD ["-c", "/etc/esproxy/esproxy.ini"]
