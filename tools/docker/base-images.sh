#!/bin/bash
# Build the Dockerfile's two base images locally, for a machine that reaches
# the Debian mirror and static.rust-lang.org but not Docker Hub:
#
#   debian:bookworm-local       debootstrap --variant=minbase bookworm, imported
#   warren-rust:bookworm-local  that + gcc + rustup's stable toolchain (rust.Dockerfile)
#
# then build Warren's image from them:
#
#   docker build --network host --build-arg BUILD_IMAGE=warren-rust:bookworm-local \
#     --build-arg BASE_IMAGE=debian:bookworm-local -t warren .
#
# Needs root (debootstrap) and a running Docker daemon. The host's extra CA
# certificates (/usr/local/share/ca-certificates/*.crt, e.g. a TLS-inspecting
# egress proxy's) are copied into the Debian image, so that apt, curl and
# cargo inside the build trust what the host trusts.
#
# env: MIRROR (default http://deb.debian.org/debian), WORK (a scratch dir,
# default a fresh mktemp -d, removed at the end).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
WORK=${WORK:-$(mktemp -d)}
trap 'rm -rf "$WORK"' EXIT

command -v debootstrap >/dev/null || { echo "needs debootstrap (apt-get install debootstrap)" >&2; exit 2; }
docker info >/dev/null || { echo "needs a running Docker daemon (DOCKER_HOST)" >&2; exit 2; }

root=$WORK/rootfs
debootstrap --variant=minbase bookworm "$root" "$MIRROR"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
tar -C "$root" -c . | docker import - debian:bookworm-local
docker build --network host -t warren-rust:bookworm-local \
    --build-arg BASE_IMAGE=debian:bookworm-local -f "$here/rust.Dockerfile" "$here"
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'bookworm-local'
