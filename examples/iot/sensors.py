"""MQTT sensors (paho-mqtt): each publishes a temperature reading to
sensors/<id>/temperature, QoS 1, every INTERVAL seconds, COUNT times
(0: forever). Over MQTT these are topics; on the broker they are routing keys
sensors.<id>.temperature on amq.topic, which is what the aggregator binds."""
import json
import math
import os
import random
import time

import paho.mqtt.client as mqtt

HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("MQTT_PORT", "1883"))
SENSORS = int(os.environ.get("SENSORS", "3"))
COUNT = int(os.environ.get("COUNT", "0"))
INTERVAL = float(os.environ.get("INTERVAL", "1"))


def sensor(i):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sensor-{i}")
    c.username_pw_set("guest", "guest")
    # A sensor that drops off the network tells the dashboard so (last will).
    c.will_set(f"sensors/sensor-{i}/status", b"offline", qos=1, retain=True)
    c.connect(HOST, PORT, keepalive=30)
    c.loop_start()
    c.publish(f"sensors/sensor-{i}/status", b"online", qos=1, retain=True).wait_for_publish(10)
    return c


def main():
    clients = [sensor(i) for i in range(1, SENSORS + 1)]
    n = 0
    while COUNT == 0 or n < COUNT:
        n += 1
        for i, c in enumerate(clients, 1):
            # A smooth daily-ish curve per sensor plus noise, one decimal.
            value = round(20 + 5 * math.sin(n / 10 + i) + random.uniform(-0.5, 0.5), 1)
            reading = json.dumps({"sensor": f"sensor-{i}", "n": n, "celsius": value})
            c.publish(f"sensors/sensor-{i}/temperature", reading, qos=1).wait_for_publish(10)
        print(f"round {n}: {SENSORS} readings sent", flush=True)
        time.sleep(INTERVAL)
    for i, c in enumerate(clients, 1):
        c.publish(f"sensors/sensor-{i}/status", b"offline", qos=1, retain=True).wait_for_publish(10)
        c.disconnect()
        c.loop_stop()


if __name__ == "__main__":
    main()
