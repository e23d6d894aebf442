# A Rust build image made from a local Debian base, for machines that cannot
# pull `rust:1-bookworm` from Docker Hub (tools/docker/base-images.sh builds
# it). rustup and the toolchain come from static.rust-lang.org, the C
# toolchain (ring's build script needs cc, jemalloc's also make) from the
# Debian mirror.
ARG BASE_IMAGE=debian:bookworm-local
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gcc libc6-dev make \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
ARG RUSTUP_INIT=https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init
RUN curl --proto '=https' --tlsv1.2 -sSf "$RUSTUP_INIT" -o /tmp/rustup-init \
 && chmod +x /tmp/rustup-init \
 && /tmp/rustup-init -y --profile minimal --default-toolchain stable --no-modify-path \
 && rm /tmp/rustup-init && cargo --version
