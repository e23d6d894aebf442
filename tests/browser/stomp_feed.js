// Injected into the broker's feed page by test_browser_feed.py, after the
// vendored @stomp/stompjs bundle: follows the same destination over STOMP
// over WebSocket and lists what arrives in <ol id="stomp">.
(function () {
  const params = new URLSearchParams(location.search);
  const destination = params.get("destination");
  const list = document.createElement("ol");
  list.id = "stomp";
  document.body.appendChild(list);
  window.stompState = "connecting";
  const client = new StompJs.Client({
    brokerURL: "ws://" + location.host + "/ws",
    connectHeaders: { login: "guest", passcode: "guest", host: "/" },
    reconnectDelay: 0,
    onConnect: () => {
      client.watchForReceipt("subscribed", () => { window.stompState = "subscribed"; });
      client.subscribe(destination, (m) => {
        const li = document.createElement("li");
        li.className = "stomp-message";
        li.textContent = m.body;
        li.dataset.destination = m.headers.destination;
        list.appendChild(li);
      }, { receipt: "subscribed" });
    },
    onStompError: (f) => { window.stompState = "error: " + f.headers.message; },
    onWebSocketClose: () => { if (window.stompState !== "subscribed") window.stompState = "closed"; },
  });
  client.activate();
})();
