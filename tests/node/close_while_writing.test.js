// Issue 9, item 1: a client queues 2000 publishes and then closes the
// connection while it is still flushing them. amqplib writes channel frames
// and the connection.close through separate buffers, so the close (and the
// broker's close-ok) can overtake publishes still being written. RabbitMQ
// keeps reading and discarding frames after close-ok until the client closes
// its side; a broker that closes the socket at once makes the client's writes
// fail (EPIPE) and the close never completes.
//
// Runs against any broker: AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2F).

'use strict';

const test = require('node:test');
const assert = require('node:assert');
const crypto = require('node:crypto');
const amqp = require('amqplib');
const amqpCallback = require('amqplib/callback_api');

const URL = process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/%2F';
const COUNT = 2000;
const BODY = Buffer.alloc(4096, 'x');
// Generous: the broker routes the 2000 publishes (8 MB) before it answers the
// close, which a loaded machine can make slow; this only catches a hang.
const CLOSE_WITHIN_MS = 20000;

function uniqueName(prefix) {
  return `${prefix}.wt-${crypto.randomBytes(6).toString('hex')}`;
}

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function deleteQueue(name) {
  const conn = await amqp.connect(URL);
  try {
    const ch = await conn.createChannel();
    await ch.deleteQueue(name);
  } finally {
    await conn.close();
  }
}

test('promise API: close() right after 2000 publishes resolves, no error', async () => {
  const queue = uniqueName('node-close');
  const conn = await amqp.connect(URL);
  const errors = [];
  const closeEvents = [];
  conn.on('error', (e) => errors.push(e));
  conn.on('close', (e) => closeEvents.push(e));
  try {
    const ch = await conn.createChannel();
    ch.on('error', (e) => errors.push(e));
    await ch.assertQueue(queue);
    for (let i = 0; i < COUNT; i++) {
      ch.sendToQueue(queue, BODY); // no waiting, even when it returns false
    }
    await within(CLOSE_WITHIN_MS, conn.close(), 'connection.close()');
  } finally {
    await deleteQueue(queue);
  }
  assert.deepStrictEqual(errors, []);
  assert.strictEqual(closeEvents.length, 1);
  assert.strictEqual(closeEvents[0], undefined, `close event with error ${closeEvents[0]}`);
});

test('callback API: close callback fires after 2000 publishes, no error', async () => {
  const queue = uniqueName('node-close-cb');
  const errors = [];
  try {
    await within(CLOSE_WITHIN_MS, new Promise((resolve, reject) => {
      amqpCallback.connect(URL, (err, conn) => {
        if (err) return reject(err);
        conn.on('error', (e) => errors.push(e));
        conn.createChannel((err2, ch) => {
          if (err2) return reject(err2);
          ch.on('error', (e) => errors.push(e));
          ch.assertQueue(queue, {}, (err3) => {
            if (err3) return reject(err3);
            for (let i = 0; i < COUNT; i++) {
              ch.sendToQueue(queue, BODY);
            }
            conn.close((err4) => (err4 ? reject(err4) : resolve()));
          });
        });
      });
    }), 'callback connection.close');
  } finally {
    await deleteQueue(queue);
  }
  assert.deepStrictEqual(errors, []);
});
