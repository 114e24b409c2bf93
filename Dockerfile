# Multi-stage build on Debian 12 slim: the final image holds only the runtime libraries, the
# binary and the example rules, and runs as a non-root user.
FROM debian:12-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config \
      librdkafka-dev libjansson-dev libhiredis-dev libhyperscan-dev libutf8proc-dev \
      libyaml-dev libmicrohttpd-dev libssl-dev libidn2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY worker worker
COPY examples examples
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDEWATCH_TESTS=OFF \
 && cmake --build build -j"$(nproc)" --target tidewatch \
 && strip build/tidewatch

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends librdkafka1 libjansson4 libhiredis0.14 \
      libhyperscan5 libutf8proc2 libyaml-0-2 libmicrohttpd12 libssl3 libidn2-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tidewatch
COPY --from=build /src/build/tidewatch /usr/local/bin/tidewatch
COPY examples /usr/share/tidewatch/examples
USER 10001
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/tidewatch"]
CMD ["run", "--rules", "/usr/share/tidewatch/examples/rules.yaml", "--http", "0.0.0.0:9464"]
