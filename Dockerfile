# Warren in a container: the release binary on Debian slim, run as user
# `warren`, data in the volume /var/lib/warren, the Debian package's config.
#
#   docker build -t warren .
#   docker run -d --name warren -p 5672:5672 -p 61613:61613 -p 15674:15674 \
#     -p 1883:1883 -p 15675:15675 -p 15672:15672 -p 15692:15692 \
#     -v warren-data:/var/lib/warren warren
#
# Clients reach the container through Docker's network, not loopback, so the
# image lets guest/guest in from anywhere (as RabbitMQ's image does): mount your
# own /etc/warren/warren.toml with real users for anything but a try-out.
#
# Both base images are build arguments, for machines that cannot pull from
# Docker Hub: tools/docker/base-images.sh makes `debian:bookworm-local` (with
# debootstrap, from the Debian mirror) and `warren-rust:bookworm-local` (that
# plus rustup from static.rust-lang.org), then
#
#   docker build --network host \
#     --build-arg BUILD_IMAGE=warren-rust:bookworm-local \
#     --build-arg BASE_IMAGE=debian:bookworm-local -t warren .
#
# (`--network host`: cargo fetches the crates during the build, and a daemon
# started with `--bridge=none` gives build steps no other network.)
ARG BUILD_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin warren

FROM ${BASE_IMAGE}
RUN adduser --system --group --home /var/lib/warren warren
COPY --from=build /src/target/release/warren /usr/bin/warren
COPY debian/warren.toml /etc/warren/warren.toml
RUN printf '\n[[users]]                      # added by the Dockerfile: guest from any address\nname = "guest"\npassword = "guest"\ntags = ["administrator"]\n' \
      >> /etc/warren/warren.toml \
 && mkdir -p /var/lib/warren && chown warren:warren /var/lib/warren
USER warren
WORKDIR /var/lib/warren
VOLUME /var/lib/warren
ENV NO_COLOR=1
# AMQP, STOMP, Web-STOMP/SSE, MQTT, Web-MQTT, management API and UI, Prometheus.
EXPOSE 5672 61613 15674 1883 15675 15672 15692
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/warren", "server", "--config", "/etc/warren/warren.toml"]
