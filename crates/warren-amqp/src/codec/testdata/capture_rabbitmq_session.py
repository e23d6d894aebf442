#!/usr/bin/env python3
"""Records what a RabbitMQ server (localhost:5672, guest/guest) sends during a short
scripted session: handshake, confirm.select, queue.declare, a 9000-byte publish
with properties (frame_max 4096, so split into 3 body frames), basic.get (ok and
empty), an unroutable mandatory publish (basic.return), basic.consume, queue.delete
and the closes. codec/tests.rs decodes the capture and checks that re-encoding every
frame reproduces RabbitMQ's bytes exactly."""
import socket, struct, sys, time

def frame(t, ch, payload):
    return struct.pack('>BHI', t, ch, len(payload)) + payload + b'\xce'

def method(cls, mid, args=b''):
    return struct.pack('>HH', cls, mid) + args

def sstr(s): return bytes([len(s)]) + s
def lstr(s): return struct.pack('>I', len(s)) + s
s = socket.create_connection(('localhost', 5672)); s.settimeout(2)
received = b''
def send(b): s.sendall(b)
def drain(t=0.3):
    global received
    end = time.time() + t
    while time.time() < end:
        try:
            s.settimeout(max(0.01, end - time.time()))
            d = s.recv(65536)
            if not d: break
            received += d
        except socket.timeout: break
send(b'AMQP\x00\x00\x09\x01'); drain()
send(frame(1, 0, method(10, 11, struct.pack('>I', 0) + sstr(b'PLAIN') + lstr(b'\x00guest\x00guest') + sstr(b'en_US')))); drain()
send(frame(1, 0, method(10, 31, struct.pack('>HIH', 2047, 4096, 0))))
send(frame(1, 0, method(10, 40, sstr(b'/') + sstr(b'') + b'\x00'))); drain()
send(frame(1, 1, method(20, 10, sstr(b'')))); drain()
send(frame(1, 1, method(85, 10, b'\x00'))); drain()
q = b'warren-codec-capture'
send(frame(1, 1, method(50, 10, struct.pack('>H', 0) + sstr(q) + bytes([0b01000]) + struct.pack('>I', 0)))); drain()  # auto-delete
props = struct.pack('>H', 0x8000 | 0x2000 | 0x1000) + sstr(b'text/plain') + struct.pack('>I', 7) + sstr(b'k') + b'I' + struct.pack('>i', 7) + b'\x02'
body = b'y' * 9000
send(frame(1, 1, method(60, 40, struct.pack('>H', 0) + sstr(b'') + sstr(q) + b'\x01')) + frame(2, 1, struct.pack('>HHQ', 60, 0, len(body)) + props) + frame(3, 1, body[:4088]) + frame(3, 1, body[4088:8176]) + frame(3, 1, body[8176:])); drain()
send(frame(1, 1, method(60, 70, struct.pack('>H', 0) + sstr(q) + b'\x00'))); drain()
send(frame(1, 1, method(60, 70, struct.pack('>H', 0) + sstr(q) + b'\x00'))); drain()  # get-empty
send(frame(1, 1, method(60, 40, struct.pack('>H', 0) + sstr(b'') + sstr(b'no-such-queue') + b'\x01')) + frame(2, 1, struct.pack('>HHQ', 60, 0, 2) + b'\x00\x00') + frame(3, 1, b'hi')); drain()  # basic.return
send(frame(1, 1, method(60, 20, struct.pack('>H', 0) + sstr(q) + sstr(b'') + b'\x00' + struct.pack('>I', 0)))); drain()
send(frame(1, 1, method(50, 40, struct.pack('>H', 0) + sstr(q) + b'\x00'))); drain()  # delete -> cancel + delete-ok
send(frame(1, 1, method(20, 40, struct.pack('>H', 200) + sstr(b'bye') + struct.pack('>HH', 0, 0)))); drain()
send(frame(1, 0, method(10, 50, struct.pack('>H', 200) + sstr(b'bye') + struct.pack('>HH', 0, 0)))); drain()
open(sys.argv[1] if len(sys.argv) > 1 else 'rabbitmq-3.10-server-session.bin', 'wb').write(received)
# print a summary
i = 0
while i + 7 <= len(received):
    t, ch, size = struct.unpack('>BHI', received[i:i+7])
    p = received[i+7:i+7+size]
    print(t, ch, size, struct.unpack('>HH', p[:4]) if t == 1 else '')
    i += 8 + size
print(len(received))
