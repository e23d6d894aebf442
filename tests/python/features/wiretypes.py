"""Record the AMQP field-table *wire types* of received message headers.

pika decodes header tables into plain Python values and loses the type tag
(``'I'`` vs ``'l'``, ``'S'`` vs ``'x'`` ...).  Brokers that must be
byte-compatible with RabbitMQ need to use the same tags, so tests check them:
``install()`` wraps ``pika.spec.BasicProperties.decode`` so that every decoded
properties object also carries ``_wire_headers``, a tree of ``(tag, value)``
pairs; :func:`wire_types` turns it into a tree of tags only.
"""

import struct

import pika.spec

_orig_decode = None


def _shortstr(buf, off):
    n = buf[off]
    return buf[off + 1:off + 1 + n], off + 1 + n


def _value(buf, off):
    tag = chr(buf[off])
    off += 1
    fixed = {"t": ">B", "b": ">b", "B": ">B", "U": ">h", "u": ">H", "s": ">h",
             "I": ">i", "i": ">I", "L": ">q", "l": ">q", "f": ">f", "d": ">d",
             "T": ">Q"}
    if tag in fixed:
        fmt = fixed[tag]
        v = struct.unpack_from(fmt, buf, off)[0]
        return (tag, v), off + struct.calcsize(fmt)
    if tag == "D":
        scale = buf[off]
        raw = struct.unpack_from(">i", buf, off + 1)[0]
        return (tag, (scale, raw)), off + 5
    if tag in ("S", "x"):
        n = struct.unpack_from(">I", buf, off)[0]
        return (tag, bytes(buf[off + 4:off + 4 + n])), off + 4 + n
    if tag == "A":
        n = struct.unpack_from(">I", buf, off)[0]
        off += 4
        end = off + n
        items = []
        while off < end:
            v, off = _value(buf, off)
            items.append(v)
        return (tag, items), off
    if tag == "F":
        t, off = _table(buf, off)
        return (tag, t), off
    if tag == "V":
        return (tag, None), off
    raise ValueError(f"unknown field type {tag!r}")


def _table(buf, off):
    n = struct.unpack_from(">I", buf, off)[0]
    off += 4
    end = off + n
    out = {}
    while off < end:
        k, off = _shortstr(buf, off)
        v, off = _value(buf, off)
        out[k.decode()] = v
    return out, off


def _decode(self, encoded, offset=0):
    result = _orig_decode(self, encoded, offset)
    try:
        off = offset
        flags = struct.unpack_from(">H", encoded, off)[0]
        off += 2
        if flags & pika.spec.BasicProperties.FLAG_CONTENT_TYPE:
            _, off = _shortstr(encoded, off)
        if flags & pika.spec.BasicProperties.FLAG_CONTENT_ENCODING:
            _, off = _shortstr(encoded, off)
        if flags & pika.spec.BasicProperties.FLAG_HEADERS:
            self._wire_headers = _table(encoded, off)[0]
        else:
            self._wire_headers = None
    except Exception:  # never break message decoding
        self._wire_headers = None
    return result


def install():
    global _orig_decode
    if _orig_decode is None:
        _orig_decode = pika.spec.BasicProperties.decode
        pika.spec.BasicProperties.decode = _decode


def uninstall():
    global _orig_decode
    if _orig_decode is not None:
        pika.spec.BasicProperties.decode = _orig_decode
        _orig_decode = None


def _types(node):
    tag, v = node
    if tag == "F":
        return {k: _types(x) for k, x in v.items()}
    if tag == "A":
        return [_types(x) for x in v]
    return tag


def wire_types(props, key=None):
    """Tag tree of ``props.headers`` (or of one header ``key``): a dict for a
    table, a list for an array, else the one-letter AMQP type tag."""
    wh = getattr(props, "_wire_headers", None)
    assert wh is not None, "wiretypes.install() not active or no headers"
    if key is None:
        return {k: _types(v) for k, v in wh.items()}
    return _types(wh[key])
