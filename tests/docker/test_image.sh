#!/usr/bin/env bash
# The Docker image end to end: run it with a named volume, publish and consume
# with pika (AMQP), ask the management API, restart the container and then
# replace it with a new one on the same volume, and find the persistent
# message still there both times.
#
#   bash tests/docker/test_image.sh                 # tests the image `warren` (IMAGE=...)
#   BUILD=1 bash tests/docker/test_image.sh         # docker build it first (BUILD_ARGS=...)
#
# Not part of scripts/test.sh: it needs a Docker daemon (and an image build
# takes a release build's time). Without a reachable daemon it prints SKIP and
# exits 0.
#
# Networking: by default the container's ports are published (`-p`) on free
# host ports, as a user would run it (NETWORK=<name> picks the Docker network,
# default Docker's default bridge). NETWORK=host runs it in the host's network
# instead, the listeners moved to free ports with WARREN_*_PORT variables
# (which win over the image's config file): for a daemon started with
# `--bridge=none`, which has no network to publish from.
#
# A machine without Docker Hub access builds the base images first
# (tools/docker/base-images.sh) and passes them as build arguments:
#   BUILD=1 BUILD_ARGS="--network host --build-arg BUILD_IMAGE=warren-rust:bookworm-local
#     --build-arg BASE_IMAGE=debian:bookworm-local" bash tests/docker/test_image.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! docker info >/dev/null 2>&1; then
  echo "SKIP: no Docker daemon reachable (docker info failed; set DOCKER_HOST?)"
  exit 0
fi
IMAGE=${IMAGE:-warren}
NETWORK=${NETWORK:-}
if [ "${BUILD:-0}" = 1 ]; then
  # shellcheck disable=SC2086  # BUILD_ARGS is a list of words
  docker build ${BUILD_ARGS:-} -t "$IMAGE" .
fi
docker image inspect "$IMAGE" >/dev/null
python3 -c 'import pika, requests' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check pika==1.4.4 requests==2.34.2

name=warren-test-$$
volume=warren-test-data-$$
cleanup() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  docker volume rm "$volume" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
AMQP_PORT=$(free_port)
HTTP_PORT=$(free_port)
WEB_STOMP_PORT=$(free_port)
export AMQP_PORT HTTP_PORT WEB_STOMP_PORT

run_container() {
  if [ "$NETWORK" = host ]; then
    # The image's other listeners are switched off: their standard ports
    # may be taken on the host (a RabbitMQ).
    docker run -d --name "$name" --network host -v "$volume:/var/lib/warren" \
      -e WARREN_BIND=127.0.0.1 -e WARREN_AMQP_PORT="$AMQP_PORT" -e WARREN_HTTP_PORT="$HTTP_PORT" \
      -e WARREN_WEB_STOMP_PORT="$WEB_STOMP_PORT" -e WARREN_STOMP_PORT=0 -e WARREN_MQTT_PORT=0 \
      -e WARREN_WEB_MQTT_PORT=0 -e WARREN_PROMETHEUS_PORT=0 "$IMAGE" >/dev/null
  else
    docker run -d --name "$name" ${NETWORK:+--network "$NETWORK"} -v "$volume:/var/lib/warren" \
      -p "127.0.0.1:$AMQP_PORT:5672" -p "127.0.0.1:$HTTP_PORT:15672" \
      -p "127.0.0.1:$WEB_STOMP_PORT:15674" "$IMAGE" >/dev/null
  fi
}

wait_ready() {
  for _ in $(seq 1 150); do
    if python3 - <<'EOF' 2>/dev/null
import os, pika
pika.BlockingConnection(pika.ConnectionParameters(
    "127.0.0.1", int(os.environ["AMQP_PORT"]), "/",
    pika.PlainCredentials("guest", "guest"), connection_attempts=1, socket_timeout=2)).close()
EOF
    then return 0; fi
    if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != true ]; then
      echo "FAIL: the container exited"; docker logs "$name" 2>&1 | tail -20; return 1
    fi
    sleep 0.2
  done
  echo "FAIL: AMQP not answering on $AMQP_PORT"; docker logs "$name" 2>&1 | tail -20; return 1
}

echo "-- docker run $IMAGE (volume $volume${NETWORK:+, network $NETWORK})"
docker volume create "$volume" >/dev/null
run_container
wait_ready
docker exec "$name" sh -c 'id; ls -ld /var/lib/warren' | sed 's/^/   /'

echo "-- pika: publish (confirmed, persistent) and consume; management API; SSE"
python3 - <<'EOF'
import os, pika, requests
params = pika.ConnectionParameters("127.0.0.1", int(os.environ["AMQP_PORT"]), "/",
                                   pika.PlainCredentials("guest", "guest"))
c = pika.BlockingConnection(params)
ch = c.channel()
ch.confirm_delivery()
ch.queue_declare("docker-test", durable=True)
# A round trip through a consumer...
ch.basic_publish("", "docker-test", b"hello from pika",
                 pika.BasicProperties(delivery_mode=2))
for method, props, body in ch.consume("docker-test", inactivity_timeout=5):
    assert body == b"hello from pika", body
    ch.basic_ack(method.delivery_tag)
    break
ch.cancel()
# ...and one left in the queue for the restarts.
ch.basic_publish("", "docker-test", b"kept across restarts",
                 pika.BasicProperties(delivery_mode=2))
c.close()
base = "http://127.0.0.1:%s" % os.environ["HTTP_PORT"]
r = requests.get(base + "/api/overview", auth=("guest", "guest"), timeout=5)
assert r.status_code == 200, (r.status_code, r.text)
print("   /api/overview:", {k: r.json().get(k) for k in ("product_name", "product_version", "node")})
r = requests.get(base + "/api/queues/%2F/docker-test", auth=("guest", "guest"), timeout=5)
assert r.status_code == 200, (r.status_code, r.text)
assert r.json()["durable"] is True, r.json()
print("   /api/queues/%2F/docker-test: durable, messages", r.json().get("messages"))
r = requests.get(base + "/api/overview", auth=("guest", "wrong"), timeout=5)
assert r.status_code == 401, r.status_code
print("   bad password: 401")
# Server-Sent Events on the Web-STOMP port: a message published over AMQP
# arrives as an event.
web = "http://127.0.0.1:%s" % os.environ["WEB_STOMP_PORT"]
with requests.get(web + "/sse", params={"destination": "/queue/docker-sse"},
                  auth=("guest", "guest"), stream=True, timeout=10) as feed:
    assert feed.status_code == 200, (feed.status_code, feed.text)
    c = pika.BlockingConnection(params)
    c.channel().basic_publish("", "docker-sse", b"to the browser")
    c.close()
    lines = feed.iter_lines()
    data = next(l for l in lines if l.startswith(b"data:"))
    assert data == b"data: to the browser", data
print("   SSE /sse?destination=/queue/docker-sse:", data.decode())
EOF

check_kept() {
  python3 - <<'EOF'
import os, pika
c = pika.BlockingConnection(pika.ConnectionParameters(
    "127.0.0.1", int(os.environ["AMQP_PORT"]), "/", pika.PlainCredentials("guest", "guest")))
ch = c.channel()
method, props, body = ch.basic_get("docker-test", auto_ack=False)
assert body == b"kept across restarts", body
assert props.delivery_mode == 2, props
ch.basic_nack(method.delivery_tag, requeue=True)   # stays for the next check
c.close()
print("   message kept:", body.decode())
EOF
}

echo "-- docker restart"
docker restart -t 20 "$name" >/dev/null
wait_ready
check_kept

echo "-- docker rm, then a new container on the same volume"
docker rm -f "$name" >/dev/null
run_container
wait_ready
check_kept
echo "-- stop (SIGTERM)"
start=$(date +%s)
docker stop -t 20 "$name" >/dev/null
echo "   stopped in $(( $(date +%s) - start )) s, exit code $(docker inspect -f '{{.State.ExitCode}}' "$name")"
echo "PASS: docker image $IMAGE"
