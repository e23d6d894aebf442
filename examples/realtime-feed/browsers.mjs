// 1,000 friends online: simulated browsers in one process, half following their
// feed with Server-Sent Events on /sse, half with STOMP over WebSocket on /ws
// (what the page does). Each is a minimal protocol reader (node:http, ws), as
// lean as a browser's own EventSource: with a full JavaScript client per browser
// this one process, not the broker, would be what is measured. alice posts
// through the app; a post's fan-out time is from the app's publish (the `at` in
// the post, same clock) to the moment the last of the 1,000 browsers has it; the
// time from the POST request is shown too.
//
//   APP_URL=http://127.0.0.1:8080 WEB_STOMP_PORT=15674 node browsers.mjs
//
// USERS (1000), SSE (USERS/2: the others use Web-STOMP), POSTS (10) and LIMIT_MS (50: the median must stay under it).
import http from "node:http";
import WebSocket from "ws";

const USERS = Number(process.env.USERS || 1000);
const POSTS = Number(process.env.POSTS || 10);
const LIMIT_MS = Number(process.env.LIMIT_MS || 50);
const SSE = Number(process.env.SSE ?? USERS / 2); // how many follow over SSE (the rest: Web-STOMP)
const APP = process.env.APP_URL || "http://127.0.0.1:8080";
const WEB = `127.0.0.1:${process.env.WEB_STOMP_PORT || 15674}`;
const AUTH = "Basic " + Buffer.from("guest:guest").toString("base64");
const users = Array.from({ length: USERS }, (_, i) => `friend${String(i + 1).padStart(4, "0")}`);

const now = () => performance.timeOrigin + performance.now(); // ms since the epoch, sub-ms
const arrivals = new Map(); // post id -> arrival times
const arrived = (body) => {
  const id = JSON.parse(body).id;
  if (!arrivals.has(id)) arrivals.set(id, []);
  arrivals.get(id).push(now());
};
const closers = [];

function followWithSse(user) {
  const dest = encodeURIComponent(`/amq/queue/feed.${user}`);
  const options = { headers: { authorization: AUTH, accept: "text/event-stream" }, agent: false };
  const req = http.get(`http://${WEB}/sse?destination=${dest}`, options, (res) => {
    let buf = "";
    res.setEncoding("utf8").on("data", (chunk) => {
      buf += chunk;
      for (let end; (end = buf.indexOf("\n\n")) >= 0; buf = buf.slice(end + 2)) {
        const data = buf.slice(0, end).split("\n").filter((l) => l.startsWith("data:"));
        if (data.length) arrived(data.map((l) => l.slice(5).trimStart()).join("\n"));
      }
    });
  });
  closers.push(() => req.destroy());
}

function followWithStomp(user) {
  const ws = new WebSocket(`ws://${WEB}/ws`, ["v12.stomp"]);
  ws.on("open", () => {
    ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0");
    ws.send(`SUBSCRIBE\nid:0\ndestination:/amq/queue/feed.${user}\nack:auto\n\n\0`);
  });
  ws.on("message", (data) => {
    const frame = data.toString();
    if (frame.startsWith("MESSAGE\n")) arrived(frame.slice(frame.indexOf("\n\n") + 2, frame.lastIndexOf("\0")));
  });
  closers.push(() => ws.close());
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function post(text) {
  const start = now();
  const res = await fetch(`${APP}/post?user=alice`, { method: "POST", body: text });
  const { id, at } = await res.json();
  for (let waited = 0; (arrivals.get(id) || []).length < USERS; waited += 5) {
    if (waited > 20000) throw new Error(`post ${id} reached ${(arrivals.get(id) || []).length} of ${USERS}`);
    await sleep(5);
  }
  const last = Math.max(...arrivals.get(id));
  return { fromPublish: last - at, fromPost: last - start };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (x) => `${x.toFixed(1)} ms`;

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
const fromPublish = times.map((t) => t.fromPublish);
const result = median(fromPublish);
console.log(`fan-out to ${USERS} browsers, ${POSTS} posts: median ${ms(result)} from the publish ` +
  `(min ${ms(Math.min(...fromPublish))}, max ${ms(Math.max(...fromPublish))}), ` +
  `median ${ms(median(times.map((t) => t.fromPost)))} from the POST`);
closers.forEach((close) => close());
process.exit(result < LIMIT_MS ? 0 : 1);
