#!/usr/bin/env python3
"""An independent reader of TensorBoard event files, for the tests.

It shares no code with aim's writer: its own CRC-32C, its own TFRecord framing and a
hand-written protobuf wire decoder with the field numbers of TensorBoard's event.proto and
summary.proto (Event: wall_time=1 double, step=2 int64, file_version=3 string, summary=5;
session_log=7; Summary: value=1; Summary.Value: tag=1, simple_value=2 float; SessionLog:
status=1, START=1), so a wrong field number or
checksum in the writer cannot cancel out against the same mistake here.

  read_tfevents.py DIR [--metrics metrics.jsonl]

Prints one JSON object: the event files (sorted by name, the order TensorBoard reads them)
with their file_version and record counts, every scalar as [file index, step, tag, value]
and every SessionLog START as [file index, step]. Exits 1 when a file is
not clean (bad length or data CRC, a torn record, a first record that is not the
file_version event) and, with --metrics, unless every numeric field of every metrics.jsonl
record is a scalar with the field's name as tag, at the record's step, with the field's
value as float32, no scalar appears twice for one (step, tag), and no scalar is left over.
"""
import argparse
import json
import math
import os
import struct
import sys


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path, problems):
    """TFRecord payloads; every framing or checksum fault is appended to problems."""
    with open(path, "rb") as f:
        data = f.read()
    pos, out = 0, []
    while pos < len(data):
        if len(data) - pos < 12:
            problems.append(f"{path}: {len(data) - pos} stray bytes at offset {pos}")
            break
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if length_crc != masked(header):
            problems.append(f"{path}: bad length CRC at offset {pos}")
            break
        if len(data) - pos < 16 + length:
            problems.append(f"{path}: torn record at offset {pos}")
            break
        payload = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if data_crc != masked(payload):
            problems.append(f"{path}: bad data CRC at offset {pos}")
            break
        out.append(payload)
        pos += 16 + length
    return out


def varint(buf, pos):
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf):
    """(field number, wire type, value) of one message; values are int, bytes or raw fixed bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"wire type {wire} of field {number}")
        yield number, wire, value


def decode_event(buf):
    event = {"wall_time": 0.0, "step": 0, "file_version": None, "values": [], "start": False}
    for number, wire, value in fields(buf):
        if number == 1 and wire == 1:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif number == 2 and wire == 0:
            event["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3 and wire == 2:
            event["file_version"] = value.decode()
        elif number == 7 and wire == 2:
            event["start"] = any(n == 1 and w == 0 and v == 1 for n, w, v in fields(value))
        elif number == 5 and wire == 2:
            for n, w, v in fields(value):
                if n == 1 and w == 2:
                    tag, simple = None, None
                    for vn, vw, vv in fields(v):
                        if vn == 1 and vw == 2:
                            tag = vv.decode()
                        elif vn == 2 and vw == 5:
                            simple = struct.unpack("<f", vv)[0]
                    event["values"].append((tag, simple))
    return event


def float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def compare_with_metrics(scalars, metrics_path, problems):
    expected = {}
    with open(metrics_path) as f:
        for line in f:
            rec = json.loads(line)
            for key, value in rec.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    expected[(rec["step"], key)] = float32(value)
    seen = {}
    for _, step, tag, value in scalars:
        if (step, tag) in seen:
            problems.append(f"step {step} tag {tag}: written twice")
        seen[(step, tag)] = value
    for k, v in expected.items():
        if k not in seen:
            problems.append(f"step {k[0]} tag {k[1]}: in metrics.jsonl, not in the event files")
        elif not same(seen[k], v):
            problems.append(f"step {k[0]} tag {k[1]}: event {seen[k]!r} != metrics.jsonl {v!r}")
    for k in seen:
        if k not in expected:
            problems.append(f"step {k[0]} tag {k[1]}: in the event files, not in metrics.jsonl")
    return len(expected)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--metrics")
    args = ap.parse_args()
    problems, files, scalars, starts = [], [], [], []
    names = sorted(n for n in os.listdir(args.dir) if "tfevents" in n)
    for i, name in enumerate(names):
        path = os.path.join(args.dir, name)
        events = [decode_event(r) for r in records(path, problems)]
        version = events[0]["file_version"] if events else None
        if version != "brain.Event:2":
            problems.append(f"{path}: first record's file_version is {version!r}, not 'brain.Event:2'")
        for e in events[1:]:
            if e["start"]:
                starts.append([i, e["step"]])
            for tag, value in e["values"]:
                if tag is None or value is None:
                    problems.append(f"{path}: step {e['step']}: a value without tag or simple_value")
                else:
                    scalars.append([i, e["step"], tag, value])
        files.append({"name": name, "file_version": version, "records": len(events)})
    out = {"files": files, "scalars": scalars, "starts": starts}
    if args.metrics:
        out["compared"] = compare_with_metrics(scalars, args.metrics, problems)
    out["problems"] = problems
    print(json.dumps(out))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
