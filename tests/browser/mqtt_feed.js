// Follows window.mqttTopic over MQTT over WebSocket with the vendored MQTT.js
// bundle (global `mqtt`): each message becomes an <li class="mqtt-message">,
// window.mqttState tells the test where the client is.
(function () {
  window.mqttState = "connecting";
  const list = document.createElement("ul");
  document.body.appendChild(list);
  const client = mqtt.connect(window.mqttUrl, {
    username: "guest",
    password: "guest",
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 0,
  });
  client.on("connect", () => {
    client.subscribe(window.mqttTopic, { qos: 1 }, (err, granted) => {
      window.mqttState = err ? "refused" : "subscribed:" + granted[0].qos;
    });
  });
  client.on("message", (topic, payload) => {
    const li = document.createElement("li");
    li.className = "mqtt-message";
    li.dataset.topic = topic;
    li.textContent = new TextDecoder().decode(payload);
    list.appendChild(li);
  });
  client.on("error", (e) => { window.mqttState = "error: " + e.message; });
})();
