#!/usr/bin/env python3
"""Generate Warren's AMQP 0-9-1 method codec from the machine-readable spec.

Usage (from the repository root):

    python3 tools/gen_methods.py [SPEC_JSON] [--out FILE] [--check] [--no-fmt]

SPEC_JSON defaults to ../shared/amqp/amqp-rabbitmq-0.9.1.json relative to the
repository root (RabbitMQ's amqp-rabbitmq-0.9.1.json: AMQP 0-9-1 plus RabbitMQ's
extensions). The output, crates/warren-amqp/src/codec/method.rs by default, is
committed, so building Warren never needs Python; re-run this script only when the
spec or the generator changes. The result is passed through rustfmt so that
`cargo fmt --check` stays clean. `--check` regenerates into memory and exits 1 if
the committed file differs (for CI).

Why generate at all: there are 70 methods, each needing a struct, a decoder, an
encoder and entries in half a dozen `match`es. Writing that by hand invites exactly
the bugs a codec must not have (a wrong id, a bit packed into the wrong octet, a
field decoded out of order), and nobody would review it carefully. A generator is
a hundred lines one can read once.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SPEC = os.path.join(REPO_ROOT, "..", "shared", "amqp", "amqp-rabbitmq-0.9.1.json")
DEFAULT_OUT = os.path.join(REPO_ROOT, "crates", "warren-amqp", "src", "codec", "method.rs")

# AMQP field type -> (Rust type, decode expression, encode statement template).
# `{f}` in the encode template is the field access (`self.name`).
TYPES = {
    "octet": ("u8", "get_u8(buf)?", "out.put_u8({f});"),
    "short": ("u16", "get_u16(buf)?", "out.put_u16({f});"),
    "long": ("u32", "get_u32(buf)?", "out.put_u32({f});"),
    "longlong": ("u64", "get_u64(buf)?", "out.put_u64({f});"),
    "timestamp": ("u64", "get_u64(buf)?", "out.put_u64({f});"),
    "shortstr": ("ShortStr", "decode_shortstr(buf)?", "encode_shortstr(out, {f}.as_bytes());"),
    "longstr": ("Bytes", "decode_longstr(buf)?", "encode_longstr(out, &{f});"),
    "table": ("FieldTable", "FieldTable::decode(buf)?", "{f}.encode(out);"),
    "bit": ("bool", None, None),
}

# Rust keywords that appear as spec field names.
KEYWORD_RENAMES = {"type": "kind"}

# RabbitMQ's spec still calls the first field of most exchange/queue/basic methods
# `ticket` (an access-control ticket from AMQP 0-8). AMQP 0-9-1 renamed it
# `reserved-1`: it must be sent as zero and is ignored. We use the 0-9-1 name so
# that nobody mistakes it for something meaningful. In access.request-ok the ticket
# is the actual answer, so it keeps its name there.
def field_name(cls_name, arg_name):
    if arg_name == "ticket" and cls_name != "access":
        return "reserved_1"
    name = KEYWORD_RENAMES.get(arg_name, arg_name)
    return name.replace("-", "_")

# Fields that AMQP 0-9-1 declares reserved (RabbitMQ's spec keeps their 0-8 names).
# Only used for docs and for the oracle-test samples (other codecs drop them).
RESERVED = {
    ("connection", "open", "capabilities"),
    ("connection", "open", "insist"),
    ("connection", "open-ok", "known-hosts"),
    ("channel", "open", "out-of-band"),
    ("channel", "open-ok", "channel-id"),
    ("basic", "get-empty", "cluster-id"),
}

# One-line summaries for the generated docs (the JSON spec carries no prose).
SUMMARIES = {
    "connection.start": "Server's opening move: protocol version, server properties, SASL mechanisms and locales.",
    "connection.start-ok": "Client's reply to `start`: client properties, chosen mechanism and its response.",
    "connection.secure": "A further SASL challenge (not used by PLAIN or AMQPLAIN).",
    "connection.secure-ok": "The client's answer to a SASL challenge.",
    "connection.tune": "Server's proposed limits: channel-max, frame-max and heartbeat interval.",
    "connection.tune-ok": "The limits the client accepts (never above the server's, except 0 meaning \"no limit\").",
    "connection.open": "Selects the virtual host; the connection is usable after `open-ok`.",
    "connection.open-ok": "The virtual host is open.",
    "connection.close": "Closes the connection, giving a reply code and, for errors, the offending method.",
    "connection.close-ok": "Confirms `close`; after it the socket can be closed.",
    "connection.blocked": "RabbitMQ extension: the server has stopped reading publishes (resource alarm).",
    "connection.unblocked": "RabbitMQ extension: publishes are accepted again.",
    "connection.update-secret": "RabbitMQ extension: replaces the credentials (e.g. an expiring OAuth token).",
    "connection.update-secret-ok": "RabbitMQ extension: confirms `update-secret`.",
    "channel.open": "Opens a channel on the frame's channel number.",
    "channel.open-ok": "The channel is open.",
    "channel.flow": "Asks the peer to pause (`active = false`) or resume sending content.",
    "channel.flow-ok": "Confirms `flow`.",
    "channel.close": "Closes the channel, giving a reply code and, for errors, the offending method.",
    "channel.close-ok": "Confirms `close`; the channel number may be reused.",
    "access.request": "AMQP 0-8 access tickets; obsolete, answered with a dummy ticket for old clients.",
    "access.request-ok": "The (meaningless) ticket granted for `access.request`.",
    "exchange.declare": "Creates an exchange, or with `passive` checks that it exists.",
    "exchange.declare-ok": "Confirms `exchange.declare`.",
    "exchange.delete": "Deletes an exchange (only if unused, with `if_unused`).",
    "exchange.delete-ok": "Confirms `exchange.delete`.",
    "exchange.bind": "RabbitMQ extension: binds exchange `destination` to exchange `source`.",
    "exchange.bind-ok": "Confirms `exchange.bind`.",
    "exchange.unbind": "RabbitMQ extension: removes an exchange-to-exchange binding.",
    "exchange.unbind-ok": "Confirms `exchange.unbind`. Its method id is 51, not 41: a historical quirk kept for compatibility.",
    "queue.declare": "Creates a queue (an empty name asks the server to pick one), or with `passive` checks it.",
    "queue.declare-ok": "The queue's (possibly generated) name and its message and consumer counts.",
    "queue.bind": "Binds a queue to an exchange with a routing key and arguments.",
    "queue.bind-ok": "Confirms `queue.bind`.",
    "queue.purge": "Removes all ready messages from a queue.",
    "queue.purge-ok": "How many messages `purge` removed.",
    "queue.delete": "Deletes a queue (conditionally with `if_unused` / `if_empty`).",
    "queue.delete-ok": "How many messages were deleted with the queue.",
    "queue.unbind": "Removes a queue binding. Unlike `bind` it has no `nowait` flag.",
    "queue.unbind-ok": "Confirms `queue.unbind`.",
    "basic.qos": "Sets the prefetch window (per consumer, or per channel with `global` in RabbitMQ).",
    "basic.qos-ok": "Confirms `basic.qos`.",
    "basic.consume": "Starts a consumer on a queue (an empty tag asks the server to pick one).",
    "basic.consume-ok": "The consumer's (possibly generated) tag.",
    "basic.cancel": "Stops a consumer. RabbitMQ also sends it to clients when a queue goes away.",
    "basic.cancel-ok": "Confirms `basic.cancel`.",
    "basic.publish": "Publishes a message; followed by a content header frame and body frames.",
    "basic.return": "Returns an unroutable mandatory message to its publisher, with its content.",
    "basic.deliver": "Delivers a message to a consumer, with its content.",
    "basic.get": "Synchronously fetches one message from a queue.",
    "basic.get-ok": "The fetched message, with its content.",
    "basic.get-empty": "`basic.get` found the queue empty.",
    "basic.ack": "Acknowledges one delivery, or all up to the tag with `multiple` (also used for publisher confirms).",
    "basic.reject": "Rejects one delivery, requeueing or discarding (dead-lettering) it.",
    "basic.recover-async": "Deprecated asynchronous form of `basic.recover`.",
    "basic.recover": "Redelivers all unacknowledged messages on the channel.",
    "basic.recover-ok": "Confirms `basic.recover`.",
    "basic.nack": "RabbitMQ extension: negative acknowledgement, optionally for several deliveries (also a publisher nack).",
    "tx.select": "Puts the channel in transactional mode.",
    "tx.select-ok": "Confirms `tx.select`.",
    "tx.commit": "Commits the publishes and acks of the current transaction.",
    "tx.commit-ok": "Confirms `tx.commit`.",
    "tx.rollback": "Discards the current transaction.",
    "tx.rollback-ok": "Confirms `tx.rollback`.",
    "confirm.select": "RabbitMQ extension: puts the channel in publisher-confirm mode.",
    "confirm.select-ok": "Confirms `confirm.select`.",
}


def camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("-"))


def resolve_type(arg, domains):
    if "type" in arg:
        return arg["type"]
    domain = arg["domain"]
    seen = set()
    # Domains may in principle refer to other domains; follow until a base type.
    while domain not in TYPES:
        if domain in seen or domain not in domains:
            raise SystemExit(f"cannot resolve domain {arg['domain']!r}")
        seen.add(domain)
        domain = domains[domain]
    return domain


def load(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    domains = {name: typ for name, typ in spec["domains"]}
    methods = []
    for cls in sorted(spec["classes"], key=lambda c: c["id"]):
        for m in sorted(cls["methods"], key=lambda m: m["id"]):
            full = f"{cls['name']}.{m['name']}"
            fields = []
            for arg in m["arguments"]:
                typ = resolve_type(arg, domains)
                if typ not in TYPES:
                    raise SystemExit(f"{full}: unsupported field type {typ!r}")
                fields.append({
                    "spec_name": arg["name"],
                    "name": field_name(cls["name"], arg["name"]),
                    "type": typ,
                    "domain": arg.get("domain"),
                    "reserved": (cls["name"], m["name"], arg["name"]) in RESERVED
                    or (arg["name"] == "ticket" and cls["name"] != "access"),
                })
            methods.append({
                "class_name": cls["name"],
                "class_id": cls["id"],
                "name": m["name"],
                "full": full,
                "id": m["id"],
                "rust": camel(cls["name"]) + camel(m["name"]),
                "fields": fields,
                "content": bool(m.get("content")),
                "sync": bool(m.get("synchronous")),
            })
    constants = spec["constants"]
    return spec, methods, constants


def bit_groups(fields):
    """Split fields into runs: ('field', f) or ('bits', [f, ...]) with at most 8 bits
    per run. Per the spec, consecutive bit fields share one octet, least significant
    bit first; a ninth consecutive bit would start a new octet."""
    out = []
    for f in fields:
        if f["type"] == "bit":
            if out and out[-1][0] == "bits" and len(out[-1][1]) < 8:
                out[-1][1].append(f)
            else:
                out.append(("bits", [f]))
        else:
            out.append(("field", f))
    return out


def gen_struct(m, w):
    summary = SUMMARIES.get(m["full"], "")
    w(f"/// `{m['full']}` (class {m['class_id']}, method {m['id']}). {summary}")
    extra = []
    if m["content"]:
        extra.append("Carries content: a header frame and body frames follow it.")
    if m["sync"]:
        if any(f["name"] == "nowait" for f in m["fields"]):
            extra.append("Synchronous: the peer answers with the `-ok` method unless `nowait` is set.")
        else:
            extra.append("Synchronous: the peer answers with the `-ok` method.")
    if extra:
        w("///")
        w("/// " + " ".join(extra))
    w("#[derive(Debug, Clone, PartialEq, Default)]")
    if not m["fields"]:
        # A braced empty struct rather than a unit struct, so that both
        # `TxSelectOk {}` and `TxSelectOk::default()` are idiomatic (clippy flags
        # `default()` on unit structs) and every method is built the same way.
        w(f"pub struct {m['rust']} {{}}")
        return
    w(f"pub struct {m['rust']} {{")
    for f in m["fields"]:
        notes = []
        if f["name"] != f["spec_name"].replace("-", "_"):
            notes.append(f"`{f['spec_name']}` in RabbitMQ's spec")
        if f["domain"] and f["domain"] != f["type"]:
            notes.append(f"domain `{f['domain']}`")
        if f["reserved"]:
            notes.append("reserved in AMQP 0-9-1: sent as zero/empty, ignored on receipt")
        if notes:
            w("    /// " + "; ".join(notes)[:1].upper() + "; ".join(notes)[1:] + ".")
        w(f"    pub {f['name']}: {TYPES[f['type']][0]},")
    w("}")


def gen_impl(m, w):
    r = m["rust"]
    w(f"impl {r} {{")
    w(f"    pub const CLASS_ID: u16 = {m['class_id']};")
    w(f"    pub const METHOD_ID: u16 = {m['id']};")
    w(f"    pub const NAME: &'static str = \"{m['full']}\";")
    w("")
    w("    /// Decode the arguments (the payload after the class and method ids).")
    w("    /// Does not check for trailing bytes; [`Method::decode`] does.")
    if not m["fields"]:
        w("    pub fn decode_args(_buf: &mut Bytes) -> Result<Self, DecodeError> {")
        w(f"        Ok({r} {{}})")
        w("    }")
    else:
        w("    pub fn decode_args(buf: &mut Bytes) -> Result<Self, DecodeError> {")
        for kind, item in bit_groups(m["fields"]):
            if kind == "field":
                w(f"        let {item['name']} = {TYPES[item['type']][1]};")
            else:
                w("        let bits = get_u8(buf)?;")
                for i, f in enumerate(item):
                    w(f"        let {f['name']} = (bits & 0x{1 << i:02x}) != 0;")
        names = ", ".join(f["name"] for f in m["fields"])
        w(f"        Ok({r} {{ {names} }})")
        w("    }")
    w("")
    w("    /// Append the encoded arguments to `out`.")
    if not m["fields"]:
        w("    pub fn encode_args(&self, _out: &mut BytesMut) {}")
    else:
        w("    pub fn encode_args(&self, out: &mut BytesMut) {")
        for kind, item in bit_groups(m["fields"]):
            if kind == "field":
                w("        " + TYPES[item["type"]][2].format(f=f"self.{item['name']}"))
            else:
                w("        let mut bits = 0u8;")
                for i, f in enumerate(item):
                    w(f"        if self.{f['name']} {{ bits |= 0x{1 << i:02x}; }}")
                w("        out.put_u8(bits);")
        w("    }")
    w("}")
    w("")
    w(f"impl From<{r}> for Method {{")
    w(f"    fn from(m: {r}) -> Method {{")
    w(f"        Method::{r}(m)")
    w("    }")
    w("}")


SAMPLE_VALUES = {
    "octet": lambda i, f: f"0x{(0x51 + i) & 0xff:02x}",
    "short": lambda i, f: f"0x{(0x1234 + 0x101 * i) & 0xffff:04x}",
    "long": lambda i, f: f"0x{(0x89ab_cdef + 0x1_0101 * i) & 0xffff_ffff:08x}",
    "longlong": lambda i, f: f"0x{(0x0123_4567_89ab_cdef + 0x101_0101 * i) & 0xffff_ffff_ffff_ffff:016x}",
    "timestamp": lambda i, f: f"{1_700_000_000 + i}",
    "shortstr": lambda i, f: f'ShortStr::from_static("{f["spec_name"]}")',
    "longstr": lambda i, f: f'Bytes::from_static(b"{f["spec_name"]}\\x00\\xff")',
    "table": lambda i, f: f'sample_table("{f["spec_name"]}")',
    # Alternate so that a swapped pair of bits is caught.
    "bit": lambda i, f: "true" if i % 2 == 0 else "false",
}


def gen_samples(methods, w):
    """Test-only constructors: every method with distinct non-default field values.
    With `reserved_default` the 0-9-1 reserved fields keep their default values, which
    is what codecs that drop those fields (amq-protocol) produce."""
    w("/// Every method with a distinct, non-default value in each field (test support).")
    w("/// With `reserved_default`, fields reserved in AMQP 0-9-1 are left at their default.")
    w("#[cfg(test)]")
    w("pub(crate) fn sample_methods(reserved_default: bool) -> Vec<Method> {")
    w("    fn sample_table(key: &'static str) -> FieldTable {")
    w("        let mut t = FieldTable::new();")
    w("        t.insert(key, warren_core::FieldValue::string(key));")
    w("        t")
    w("    }")
    w("    vec![")
    for m in methods:
        if not m["fields"]:
            w(f"        Method::{m['rust']}({m['rust']} {{}}),")
            continue
        w(f"        Method::{m['rust']}({m['rust']} {{")
        for i, f in enumerate(m["fields"]):
            val = SAMPLE_VALUES[f["type"]](i, f)
            if f["reserved"]:
                val = f"if reserved_default {{ Default::default() }} else {{ {val} }}"
            w(f"            {f['name']}: {val},")
        w("        }),")
    w("    ]")
    w("}")


def gen_reply_codes(constants, w):
    codes = [c for c in constants if "class" in c or c["name"] == "REPLY-SUCCESS"]
    w("/// AMQP reply codes, for `connection.close` and `channel.close`.")
    w("///")
    w("/// Soft errors close only the channel; hard errors close the whole connection.")
    w("pub mod reply_code {")
    for c in codes:
        cls = c.get("class", "success")
        w(f"    /// {c['value']} ({cls}).")
        w(f"    pub const {c['name'].replace('-', '_')}: u16 = {c['value']};")
    w("")
    w("    /// The code's name as RabbitMQ prints it at the start of a reply text,")
    w("    /// e.g. `FRAME_ERROR` in \"FRAME_ERROR - unknown frame type 5\".")
    w("    pub fn name(code: u16) -> Option<&'static str> {")
    w("        Some(match code {")
    for c in codes:
        w(f"            {c['name'].replace('-', '_')} => \"{c['name'].replace('-', '_')}\",")
    w("            _ => return None,")
    w("        })")
    w("    }")
    w("")
    w("    /// Whether the code is a hard error (closes the connection, not just the channel).")
    w("    pub fn is_hard_error(code: u16) -> bool {")
    hard = " | ".join(c["name"].replace("-", "_") for c in codes if c.get("class") == "hard-error")
    w(f"        matches!(code, {hard})")
    w("    }")
    w("}")


def generate(spec_path):
    spec, methods, constants = load(spec_path)
    lines = []
    w = lines.append
    w("// @generated by tools/gen_methods.py from amqp-rabbitmq-0.9.1.json. DO NOT EDIT.")
    w("// Regenerate from the repository root with: python3 tools/gen_methods.py")
    w("// (optionally passing the spec path; the script runs rustfmt on the output).")
    w("")
    w("//! AMQP 0-9-1 methods (with RabbitMQ's extensions): one struct per method, the")
    w("//! [`Method`] enum over all of them, and their argument codecs.")
    w("//!")
    w("//! Field types follow the spec's domains: octet `u8`, short `u16`, long `u32`,")
    w("//! longlong and timestamp `u64`, bit `bool`, shortstr [`ShortStr`], longstr")
    w("//! [`Bytes`], table [`FieldTable`]. Consecutive bit fields share one octet,")
    w("//! least significant bit first. Decoded strings are slices of the frame buffer,")
    w("//! not copies, so a method costs no allocation beyond its field tables.")
    w("")
    w("use super::error::MethodDecodeError;")
    w("use super::wire::{get_u16, get_u32, get_u64, get_u8};")
    w("use bytes::{Buf, BufMut, Bytes, BytesMut};")
    w("use warren_core::table::{")
    w("    decode_longstr, decode_shortstr, encode_longstr, encode_shortstr, DecodeError, FieldTable,")
    w("};")
    w("use warren_core::ShortStr;")
    w("")
    gen_reply_codes(constants, w)
    w("")
    w("/// Any AMQP 0-9-1 method, as carried by a method frame.")
    w("#[derive(Debug, Clone, PartialEq)]")
    w("pub enum Method {")
    for m in methods:
        w(f"    {m['rust']}({m['rust']}),")
    w("}")
    w("")
    w("impl Method {")
    w("    /// Decode the arguments of method (`class_id`, `method_id`) from `args` (the")
    w("    /// method frame payload after the 4 id bytes).")
    w("    ///")
    w("    /// Like RabbitMQ, this is strict: arguments that end early *or* are followed by")
    w("    /// extra bytes are malformed (RabbitMQ answers both with 501 FRAME_ERROR,")
    w("    /// \"cannot decode\"). Unused high bits in a bit octet are ignored, as RabbitMQ")
    w("    /// does. Never panics, whatever the input.")
    w("    pub fn decode(class_id: u16, method_id: u16, args: &mut Bytes) -> Result<Method, MethodDecodeError> {")
    w("        let decoded = match (class_id, method_id) {")
    for m in methods:
        w(f"            ({m['class_id']}, {m['id']}) => {m['rust']}::decode_args(args).map(Method::{m['rust']}),")
    w("            _ => return Err(MethodDecodeError::UnknownMethod { class_id, method_id }),")
    w("        };")
    w("        match decoded {")
    w("            Ok(_) if args.has_remaining() => Err(MethodDecodeError::Malformed {")
    w("                class_id,")
    w("                method_id,")
    w("                reason: \"trailing bytes after method arguments\",")
    w("            }),")
    w("            Ok(method) => Ok(method),")
    w("            Err(DecodeError(reason)) => Err(MethodDecodeError::Malformed { class_id, method_id, reason }),")
    w("        }")
    w("    }")
    w("")
    w("    /// Append class id, method id and the encoded arguments (the whole method-frame")
    w("    /// payload) to `out`.")
    w("    pub fn encode(&self, out: &mut BytesMut) {")
    w("        out.put_u16(self.class_id());")
    w("        out.put_u16(self.method_id());")
    w("        match self {")
    for m in methods:
        w(f"            Method::{m['rust']}(m) => m.encode_args(out),")
    w("        }")
    w("    }")
    w("")
    w("    pub fn class_id(&self) -> u16 {")
    w("        match self {")
    by_class = {}
    for m in methods:
        by_class.setdefault(m["class_id"], []).append(m)
    for cid, ms in by_class.items():
        pats = " | ".join(f"Method::{m['rust']}(_)" for m in ms)
        w(f"            {pats} => {cid},")
    w("        }")
    w("    }")
    w("")
    w("    pub fn method_id(&self) -> u16 {")
    w("        match self {")
    for m in methods:
        w(f"            Method::{m['rust']}(_) => {m['id']},")
    w("        }")
    w("    }")
    w("")
    w("    /// The spec name, e.g. \"basic.publish\", for logs and error texts.")
    w("    pub fn name(&self) -> &'static str {")
    w("        match self {")
    for m in methods:
        w(f"            Method::{m['rust']}(_) => \"{m['full']}\",")
    w("        }")
    w("    }")
    w("")
    w("    /// True for basic.publish / basic.return / basic.deliver / basic.get-ok: the")
    w("    /// methods followed by a content header frame and body frames.")
    w("    pub fn has_content(&self) -> bool {")
    pats = " | ".join(f"Method::{m['rust']}(_)" for m in methods if m["content"])
    w(f"        matches!(self, {pats})")
    w("    }")
    w("")
    w("    /// True for methods that expect a reply method from the peer (when their")
    w("    /// `nowait` flag, if any, is clear): the spec's \"synchronous\" methods.")
    w("    pub fn is_synchronous(&self) -> bool {")
    pats = " | ".join(f"Method::{m['rust']}(_)" for m in methods if m["sync"])
    w(f"        matches!(self, {pats})")
    w("    }")
    w("}")
    w("")
    w("/// The spec name of method (`class_id`, `method_id`), if it exists: for error")
    w("/// texts about a method that could not be decoded.")
    w("pub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {")
    w("    Some(match (class_id, method_id) {")
    for m in methods:
        w(f"        ({m['class_id']}, {m['id']}) => \"{m['full']}\",")
    w("        _ => return None,")
    w("    })")
    w("}")
    w("")
    gen_samples(methods, w)
    for m in methods:
        w("")
        gen_struct(m, w)
        w("")
        gen_impl(m, w)
    return "\n".join(lines) + "\n"


def rustfmt(path):
    subprocess.run(["rustfmt", "--edition", "2021", path], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", nargs="?", default=DEFAULT_SPEC, help="path to amqp-rabbitmq-0.9.1.json")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output .rs file")
    ap.add_argument("--check", action="store_true", help="exit 1 if --out is not up to date")
    ap.add_argument("--no-fmt", action="store_true", help="skip rustfmt")
    args = ap.parse_args()

    code = generate(args.spec)
    if args.check:
        with tempfile.NamedTemporaryFile("w", suffix=".rs", delete=False) as tmp:
            tmp.write(code)
        try:
            if not args.no_fmt:
                rustfmt(tmp.name)
            with open(tmp.name, encoding="utf-8") as f:
                fresh = f.read()
        finally:
            os.unlink(tmp.name)
        try:
            with open(args.out, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = None
        if fresh != current:
            print(f"{args.out} is out of date; run python3 tools/gen_methods.py", file=sys.stderr)
            sys.exit(1)
        return
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(code)
    if not args.no_fmt:
        rustfmt(args.out)
    print(f"wrote {os.path.relpath(args.out, REPO_ROOT)}")


if __name__ == "__main__":
    main()
