"""Probe: what a broker answers to ~120 client actions (errors above all).

For each scenario a fresh raw-socket connection (see tests/python/rawamqp.py)
opens channel 1, sends the frames and records every method the broker sends
back until the first channel.close / connection.close (level, code, text,
class/method ids). Generated names are normalised, so two runs can be diffed:

    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F python3 tools/amqp_error_survey.py > rabbit.txt
    AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F python3 tools/amqp_error_survey.py > warren.txt
    diff rabbit.txt warren.txt

Optional arguments: substrings of scenario names to run only those.
See docs/amqp-error-survey.md for the findings.
"""

import os
import re
import sys, time, socket, struct, uuid, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "python"))
from rawamqp import *

def u(p): return f"{p}.sv-{uuid.uuid4().hex[:8]}"

NAMES = {
 (10,50):"connection.close",(10,51):"connection.close-ok",(20,11):"channel.open-ok",(20,40):"channel.close",(20,41):"channel.close-ok",
 (20,21):"channel.flow-ok",(30,11):"access.request-ok",(40,11):"exchange.declare-ok",(40,21):"exchange.delete-ok",(40,31):"exchange.bind-ok",(40,51):"exchange.unbind-ok",
 (50,11):"queue.declare-ok",(50,21):"queue.bind-ok",(50,31):"queue.purge-ok",(50,41):"queue.delete-ok",(50,51):"queue.unbind-ok",
 (60,11):"basic.qos-ok",(60,21):"basic.consume-ok",(60,31):"basic.cancel-ok",(60,30):"basic.cancel",(60,60):"basic.deliver",(60,71):"basic.get-ok",(60,72):"basic.get-empty",(60,111):"basic.recover-ok",
 (60,50):"basic.return",(60,80):"basic.ack",(85,11):"confirm.select-ok",(90,11):"tx.select-ok",(90,21):"tx.commit-ok",(90,31):"tx.rollback-ok",
}

def run(frames_fn):
    c = RawConnection.open()
    c.open_channel(1)
    data = frames_fn()
    c.send(data)
    out = []
    deadline = time.monotonic() + 0.8
    try:
        while time.monotonic() < deadline:
            f = c.recv_frame(max(0.01, deadline - time.monotonic()))
            if f is None: out.append("EOF"); break
            if f.typ == FRAME_HEARTBEAT: continue
            if f.typ != FRAME_METHOD: out.append(f"frame{f.typ}@{f.channel}"); continue
            if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE):
                cl = Close.parse(f)
                out.append(f"{'CONN' if f.channel==0 else 'CH'} {cl.code} {cl.text!r} ({cl.class_id},{cl.method_id})")
                if f.channel == 0:
                    c.send(method_frame(0, CONNECTION_CLOSE_OK))
                break
            out.append(NAMES.get(f.method, str(f.method)) + (f"@{f.channel}" if f.channel != 1 else ""))
    except socket.timeout:
        pass
    except OSError as e:
        out.append(f"ERR {e}")
    c.close()
    # compress: drop leading ok replies of setup
    return out

X = u("x"); Q = u("q"); Q2 = u("q")
def setup():
    c = RawConnection.open(); c.open_channel(1)
    c.send(exchange_declare(1, X, "direct")); c.expect((40,11))
    c.send(queue_declare(1, Q)); c.expect((50,11))
    c.send(queue_bind(1, Q, X, "k")); c.expect((50,21))
    c.close()
def teardown():
    c = RawConnection.open(); c.open_channel(1)
    c.send(exchange_delete(1, X)); c.expect((40,21))
    c.send(queue_delete(1, Q)); c.expect((50,41))
    c.close()

S = {
 "get '' no declare": lambda: basic_get(1, ""),
 "consume '' no declare": lambda: basic_consume(1, ""),
 "queue.bind '' no declare": lambda: queue_bind(1, "", "amq.direct", "k"),
 "queue.unbind '' no declare": lambda: queue_unbind(1, "", "amq.direct", "k"),
 "queue.purge '' no declare": lambda: queue_purge(1, ""),
 "queue.delete '' no declare": lambda: queue_delete(1, ""),
 "queue.declare passive '' no declare": lambda: queue_declare(1, "", passive=True),
 "queue.declare passive '' after declare": lambda: queue_declare(1, "", exclusive=True) + queue_declare(1, "", passive=True),
 "queue.declare passive missing": lambda: queue_declare(1, "nope-q", passive=True),
 "exchange.declare passive ''": lambda: exchange_declare(1, "", passive=True),
 "exchange.declare ''": lambda: exchange_declare(1, "", "direct"),
 "exchange.delete ''": lambda: exchange_delete(1, ""),
 "exchange.bind dst ''": lambda: exchange_bind(1, "", "amq.direct"),
 "exchange.bind src ''": lambda: exchange_bind(1, "amq.direct", ""),
 "exchange.unbind dst ''": lambda: exchange_unbind(1, "", "amq.direct"),
 "exchange.unbind src ''": lambda: exchange_unbind(1, "amq.direct", ""),
 "queue.bind to ''": lambda: queue_bind(1, Q, "", Q),
 "queue.unbind from ''": lambda: queue_unbind(1, Q, "", Q),
 "queue.bind missing q ''-x": lambda: queue_bind(1, "nope-q", "", "k"),
 "exchange.unbind missing dst": lambda: exchange_unbind(1, "nope-x", "amq.direct", "k"),
 "exchange.unbind missing src": lambda: exchange_unbind(1, "amq.direct", "nope-x", "k"),
 "exchange.unbind missing binding": lambda: exchange_unbind(1, "amq.fanout", "amq.direct", "nobind"),
 "queue.unbind missing q": lambda: queue_unbind(1, "nope-q", X, "k"),
 "queue.unbind missing x": lambda: queue_unbind(1, Q, "nope-x", "k"),
 "queue.unbind missing binding": lambda: queue_unbind(1, Q, X, "nobind"),
 "exchange.bind missing dst": lambda: exchange_bind(1, "nope-x", "amq.direct", "k"),
 "exchange.bind missing src": lambda: exchange_bind(1, "amq.direct", "nope-x", "k"),
 "queue.bind missing q": lambda: queue_bind(1, "nope-q", X, "k"),
 "queue.bind missing x": lambda: queue_bind(1, Q, "nope-x", "k"),
 "exchange.declare unknown type": lambda: exchange_declare(1, u("x"), "nosuchtype"),
 "exchange.declare passive unknown type existing": lambda: exchange_declare(1, X, "nosuchtype", passive=True),
 "exchange.declare passive missing": lambda: exchange_declare(1, "nope-x", passive=True),
 "exchange.declare existing wrong type": lambda: exchange_declare(1, X, "fanout"),
 "exchange.declare amq.foo": lambda: exchange_declare(1, "amq.foo", "direct"),
 "exchange.delete amq.direct": lambda: exchange_delete(1, "amq.direct"),
 "exchange.delete missing": lambda: exchange_delete(1, "nope-x"),
 "exchange.delete if-unused in use": lambda: exchange_delete(1, X, if_unused=True),
 "queue.declare amq.q": lambda: queue_declare(1, "amq.q"),
 "queue.delete if-empty missing": lambda: queue_delete(1, "nope-q", if_empty=True),
 "queue.delete missing": lambda: queue_delete(1, "nope-q"),
 "queue.purge missing": lambda: queue_purge(1, "nope-q"),
 "basic.get missing": lambda: basic_get(1, "nope-q"),
 "basic.consume missing": lambda: basic_consume(1, "nope-q"),
 "qos prefetch_size": lambda: basic_qos(1, prefetch_size=10),
 "consume reuse tag": lambda: basic_consume(1, Q, "t1") + basic_consume(1, Q, "t1"),
 "consume exclusive while consumed": lambda: basic_consume(1, Q, "t1") + basic_consume(1, Q, "t2", exclusive=True),
 "consume while exclusive consumer": lambda: basic_consume(1, Q, "t1", exclusive=True) + basic_consume(1, Q, "t2"),
 "cancel unknown tag": lambda: basic_cancel(1, "nope"),
 "recover requeue=false": lambda: method_frame(1, (60,110), bits(False)),
 "recover-async requeue=false": lambda: method_frame(1, (60,100), bits(False)),
 "recover requeue=true": lambda: method_frame(1, (60,110), bits(True)),
 "publish immediate": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, True)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0)),
 "publish missing exchange": lambda: publish_frames(1, "nope-x", "k", b"x"),
 "publish internal exchange": lambda: exchange_declare(1, X+"i", "direct", internal=True) + publish_frames(1, X+"i", "k", b"x") ,
 "ack unknown tag": lambda: basic_ack(1, 5),
 "ack multiple 0 nothing": lambda: basic_ack(1, 0, multiple=True) + basic_qos(1),
 "ack 0 non-multiple": lambda: basic_ack(1, 0) + basic_qos(1),
 "reject unknown tag": lambda: basic_reject(1, 5),
 "nack unknown tag": lambda: basic_nack(1, 5),
 "nack multiple unknown": lambda: basic_nack(1, 5, multiple=True),
 "tx.commit no select": lambda: method_frame(1, (90,20)),
 "tx.rollback no select": lambda: method_frame(1, (90,30)),
 "confirm after tx": lambda: method_frame(1, (90,10)) + method_frame(1, (85,10), bits(False)),
 "tx after confirm": lambda: method_frame(1, (85,10), bits(False)) + method_frame(1, (90,10)),
 "channel.open again": lambda: method_frame(1, CHANNEL_OPEN, shortstr("")),
 "method on unopened channel": lambda: basic_get(3, "q"),
 "header on unopened channel": lambda: frame(FRAME_HEADER, 3, struct.pack(">HHQH", 60, 0, 0, 0)),
 "body on unopened channel": lambda: frame(FRAME_BODY, 3, b"x"),
 "header without method": lambda: frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 1, 0)),
 "body without method": lambda: frame(FRAME_BODY, 1, b"x"),
 "method instead of header": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, False)) + basic_qos(1),
 "method instead of body": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 5, 0)) + basic_qos(1),
 "header wrong class": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 50, 0, 5, 0)),
 "second header": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 5, 0))*2,
 "body too long": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr("x") + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 2, 0)) + frame(FRAME_BODY, 1, b"xyz") + basic_qos(1),
 "heartbeat on channel 1": lambda: frame(FRAME_HEARTBEAT, 1, b""),
 "unknown frame type": lambda: frame(9, 1, b"abc"),
 "connection.tune-ok on ch1": lambda: method_frame(1, CONNECTION_TUNE_OK, struct.pack(">HIH", 10, 131072, 0)),
 "connection.close on ch1": lambda: close_frame(1).replace(struct.pack(">HH",20,40), struct.pack(">HH",10,50)),
 "connection.open on ch0": lambda: method_frame(0, CONNECTION_OPEN, shortstr("/") + shortstr("") + bits(False)),
 "channel.open on ch0": lambda: method_frame(0, CHANNEL_OPEN, shortstr("")),
 "basic.get on ch0": lambda: basic_get(0, "q"),
 "client basic.deliver": lambda: method_frame(1, (60,60), shortstr("t") + struct.pack(">Q",1) + bits(False) + shortstr("") + shortstr("k")) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0)),
 "client queue.declare-ok": lambda: method_frame(1, (50,11), shortstr("q") + struct.pack(">II",0,0)),
 "client basic.get-empty": lambda: method_frame(1, (60,72), shortstr("")),
 "client channel.open-ok": lambda: method_frame(1, (20,11), longstr(b"")),
 "unknown method id": lambda: method_frame(1, (60, 999), b""),
 "unknown class id": lambda: method_frame(1, (77, 10), b""),
 "truncated method args": lambda: method_frame(1, (50, 10), b"\x00"),
 "channel.flow false": lambda: method_frame(1, (20,20), bits(False)),
 "access.request": lambda: method_frame(1, (30,10), shortstr("/data") + bits(False,False,True,True,True)),
 "channel.close-ok unsolicited": lambda: method_frame(1, CHANNEL_CLOSE_OK) + basic_qos(1),
 "queue.declare bad x-max-length": lambda: queue_declare(1, u("q"), args={"x-max-length": "abc"}),
 "queue.declare neg x-max-length": lambda: queue_declare(1, u("q"), args={"x-max-length": -1}),
 "queue.declare bad x-message-ttl": lambda: queue_declare(1, u("q"), args={"x-message-ttl": "abc"}),
 "queue.declare bad x-expires 0": lambda: queue_declare(1, u("q"), args={"x-expires": 0}),
 "queue.declare bad x-overflow": lambda: queue_declare(1, u("q"), args={"x-overflow": "nope"}),
 "queue.declare bad x-queue-type": lambda: queue_declare(1, u("q"), args={"x-queue-type": "nope"}),
 "queue.declare quorum non-durable": lambda: queue_declare(1, u("q"), args={"x-queue-type": "quorum"}),
 "queue.declare bad x-max-priority": lambda: queue_declare(1, u("q"), args={"x-max-priority": "a"}),
 "queue.declare bad x-dead-letter-exchange type": lambda: queue_declare(1, u("q"), args={"x-dead-letter-exchange": 5}),
 "queue.declare dlrk without dlx": lambda: queue_declare(1, u("q"), args={"x-dead-letter-routing-key": "a"}),
 "queue.declare bad x-single-active-consumer": lambda: queue_declare(1, u("q"), args={"x-single-active-consumer": "a"}),
 "consume bad x-priority": lambda: basic_consume(1, Q, args={"x-priority": "a"}),
 "bind headers bad x-match": lambda: queue_bind(1, Q, "amq.headers", "", args={"x-match": "foo"}),
 "exchange.declare bad alternate-exchange type": lambda: exchange_declare(1, u("x"), args={"alternate-exchange": 5}),
 "publish expiration invalid": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr(Q) + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0x0100) + shortstr("abc")),
 "publish expiration negative": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr(Q) + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0x0100) + shortstr("-5")),
 "publish user_id mismatch": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr(Q) + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0x0010) + shortstr("bob")),
 "publish reply_to direct w/o consumer": lambda: method_frame(1, BASIC_PUBLISH, T + shortstr("") + shortstr(Q) + bits(False, False)) + frame(FRAME_HEADER, 1, struct.pack(">HHQH", 60, 0, 0, 0x0200) + shortstr("amq.rabbitmq.reply-to")),
 "consume reply-to with ack": lambda: basic_consume(1, "amq.rabbitmq.reply-to"),
 "consume reply-to twice": lambda: basic_consume(1, "amq.rabbitmq.reply-to", no_ack=True) + basic_consume(1, "amq.rabbitmq.reply-to", no_ack=True),
 "declare amq.rabbitmq.reply-to active": lambda: queue_declare(1, "amq.rabbitmq.reply-to"),
 "declare amq.rabbitmq.reply-to passive": lambda: queue_declare(1, "amq.rabbitmq.reply-to", passive=True),
 "publish to amq.rabbitmq.reply-to.bogus": lambda: publish_frames(1, "", "amq.rabbitmq.reply-to.bogus", b"x") + basic_qos(1),
 "get on amq.rabbitmq.reply-to": lambda: basic_get(1, "amq.rabbitmq.reply-to"),
 "bind amq.rabbitmq.reply-to": lambda: queue_bind(1, "amq.rabbitmq.reply-to", "amq.direct", "k"),
 "exchange.declare amq.direct different type": lambda: exchange_declare(1, "amq.direct", "fanout", durable=True),
 "exchange.declare bad x-delayed": lambda: exchange_declare(1, u("x"), "x-delayed-message"),
 "consume exclusive, then get": lambda: basic_consume(1, Q, "t1", exclusive=True) + basic_get(1, Q),
 "delete with consumer same channel": lambda: queue_declare(1, Q2) + basic_consume(1, Q2, "tdel") + queue_delete(1, Q2),
}
only = sys.argv[1:] 
setup()
res = {}
try:
    for name, fn in S.items():
        if only and not any(o in name for o in only): continue
        try:
            res[name] = run(fn)
        except Exception as e:
            res[name] = [f"PROBE-ERROR {e!r}"]
finally:
    teardown()
def norm(s):
    s = re.sub(r"sv-[0-9a-f]{8}", "sv-N", s)
    return re.sub(r"amq\.(ctag|gen)-[\w-]+", r"amq.\1-X", s)


for name, out in res.items():
    print(f"{name}: {norm(' | '.join(out))}")
