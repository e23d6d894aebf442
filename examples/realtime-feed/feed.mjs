// The realtime feed app (seed 003). Every user has a fanout exchange
// `<user>_feedExchange`; a user's feed is the queue `feed.<user>`, bound to the
// exchange of each friend they follow. A post is one publish to the poster's
// exchange; the broker copies it to every friend's queue, and each friend's
// browser follows its queue straight from Warren (Web-STOMP or SSE, no gateway).
//
//   AMQP_URL=... WEB_STOMP_PORT=15674 node feed.mjs      # then open http://127.0.0.1:8080/?user=bob
//
// HTTP: GET / (the page), POST /follow?friend=F (body: user names, one a line),
// POST /post?user=U (body: the text).
import http from "node:http";
import fs from "node:fs";
import amqp from "amqplib";

const AMQP_URL = process.env.AMQP_URL || "amqp://guest:guest@localhost:5672/%2F";
const WEB_STOMP_PORT = process.env.WEB_STOMP_PORT || "15674";
const PORT = Number(process.env.PORT || 8080);
const here = new URL(".", import.meta.url).pathname;
const files = {
  "/": ["index.html", "text/html"],
  "/stomp.umd.min.js": ["node_modules/@stomp/stompjs/bundles/stomp.umd.min.js", "text/javascript"],
};

const conn = await amqp.connect(AMQP_URL);
const ch = await conn.createConfirmChannel();
let posts = 0;
const run = Date.now().toString(36); // post ids stay unique across restarts

const exchange = (user) => `${user}_feedExchange`;

async function follow(friend, users) {
  await ch.assertExchange(exchange(friend), "fanout", { durable: false });
  for (const user of users) {
    // The feed queue lives while its user is away for up to an hour.
    await ch.assertQueue(`feed.${user}`, { durable: false, arguments: { "x-expires": 3600000 } });
    await ch.bindQueue(`feed.${user}`, exchange(friend), "");
  }
}

async function post(user, text) {
  await ch.assertExchange(exchange(user), "fanout", { durable: false });
  // `at`: when it was published, in ms since the epoch (sub-ms, for browsers.mjs).
  const msg = { id: `${run}-${++posts}`, from: user, text, at: performance.timeOrigin + performance.now() };
  ch.publish(exchange(user), "", Buffer.from(JSON.stringify(msg)), { contentType: "application/json" });
  await ch.waitForConfirms();
  return msg;
}

function body(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on("data", (c) => parts.push(c)).on("end", () => resolve(Buffer.concat(parts).toString()));
  });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, "http://x");
  try {
    if (req.method === "GET" && files[url.pathname]) {
      const [file, type] = files[url.pathname];
      res.writeHead(200, { "content-type": type });
      return res.end(fs.readFileSync(here + file));
    }
    if (req.method === "GET" && url.pathname === "/config.json") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ webStompPort: WEB_STOMP_PORT }));
    }
    if (req.method === "POST" && url.pathname === "/follow") {
      const users = (await body(req)).split("\n").filter(Boolean);
      await follow(url.searchParams.get("friend"), users);
      return res.end(`${users.length} now follow ${url.searchParams.get("friend")}\n`);
    }
    if (req.method === "POST" && url.pathname === "/post") {
      const msg = await post(url.searchParams.get("user"), await body(req));
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(msg));
    }
    res.writeHead(404).end("not found\n");
  } catch (e) {
    res.writeHead(500).end(`${e.message}\n`);
  }
});
server.listen(PORT, "127.0.0.1", () => console.log(`feed app on http://127.0.0.1:${server.address().port}/`));
