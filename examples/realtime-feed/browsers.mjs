// 1,000 friends online: simulated browsers in one process, half following their
// feed with EventSource on /sse, half with @stomp/stompjs over /ws (what the page
// does). alice posts through the app; each post's fan-out time is from the POST
// to the moment the last of the 1,000 browsers has it.
//
//   APP_URL=http://127.0.0.1:8080 WEB_STOMP_PORT=15674 node browsers.mjs
//
// USERS (1000), SSE (USERS/2: the others use Web-STOMP), POSTS (10) and LIMIT_MS (50: the median must stay under it).
import { EventSource } from "eventsource";
import { Client } from "@stomp/stompjs";
import WebSocket from "ws";

const USERS = Number(process.env.USERS || 1000);
const POSTS = Number(process.env.POSTS || 10);
const LIMIT_MS = Number(process.env.LIMIT_MS || 50);
const SSE = Number(process.env.SSE ?? USERS / 2); // how many follow over SSE (the rest: Web-STOMP)
const APP = process.env.APP_URL || "http://127.0.0.1:8080";
const WEB = `127.0.0.1:${process.env.WEB_STOMP_PORT || 15674}`;
const AUTH = "Basic " + Buffer.from("guest:guest").toString("base64");
const users = Array.from({ length: USERS }, (_, i) => `friend${String(i + 1).padStart(4, "0")}`);

const arrivals = new Map(); // post id -> arrival times
const arrived = (body) => {
  const id = JSON.parse(body).id;
  if (!arrivals.has(id)) arrivals.set(id, []);
  arrivals.get(id).push(performance.now());
};
const closers = [];

function followWithSse(user) {
  const dest = encodeURIComponent(`/amq/queue/feed.${user}`);
  const es = new EventSource(`http://${WEB}/sse?destination=${dest}`, {
    fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, authorization: AUTH } }),
  });
  es.onmessage = (e) => arrived(e.data);
  closers.push(() => es.close());
}

function followWithStomp(user) {
  const client = new Client({
    webSocketFactory: () => new WebSocket(`ws://${WEB}/ws`, ["v12.stomp"]),
    connectHeaders: { login: "guest", passcode: "guest" },
    reconnectDelay: 0,
    onConnect: () => client.subscribe(`/amq/queue/feed.${user}`, (m) => arrived(m.body)),
  });
  client.activate();
  closers.push(() => client.deactivate());
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(text) {
  const start = performance.now();
  const res = await fetch(`${APP}/post?user=alice`, { method: "POST", body: text });
  const { id } = await res.json();
  for (let waited = 0; (arrivals.get(id) || []).length < USERS; waited += 5) {
    if (waited > 20000) throw new Error(`post ${id} reached ${(arrivals.get(id) || []).length} of ${USERS}`);
    await sleep(5);
  }
  return Math.max(...arrivals.get(id)) - start;
}

const res = await fetch(`${APP}/follow?friend=alice`, { method: "POST", body: users.join("\n") });
console.log(await res.text().then((t) => t.trim()));
users.forEach((u, i) => (i < SSE ? followWithSse(u) : followWithStomp(u)));
// Everyone is subscribed once a first post has reached them all.
for (let tries = 0; ; tries++) {
  try { await post("hello, everyone"); break; } catch (e) { if (tries > 3) throw e; }
}
console.log(`${USERS} browsers online (${SSE} SSE, ${USERS - SSE} Web-STOMP)`);

const times = [];
for (let i = 1; i <= POSTS; i++) {
  times.push(await post(`post ${i}`));
  await sleep(100);
}
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`fan-out to ${USERS} browsers, ${POSTS} posts: median ${median.toFixed(1)} ms, ` +
  `min ${times[0].toFixed(1)} ms, max ${times.at(-1).toFixed(1)} ms`);
closers.forEach((close) => close());
process.exit(median < LIMIT_MS ? 0 : 1);
