#!/usr/bin/env python3
"""Writes the seed corpora of server/upload_fuzz and server/download_message_fuzz.

Usage: server/fuzz_corpus/make_seeds.py   (from anywhere; rewrites the seeds)

Each seed is named for the case it exercises. The byte layouts are the ones
the targets' header comments describe; keep them in step. Seeds found by
fuzzing (regressions) live beside these under their own names and are not
touched by this script.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# server/upload_fuzz.cc's kPaths, by name.
PATHS = ["a", "b", "dir/f", "dir/sub/g", "a/x", "dir", "../x", ".ringstore/x",
         ".ringstore/tmp/y", "a//b", "./a", "dir/../a", "/abs", "", ".ringstore", "dir/",
         "x\xC0\xAF", "c" * 256, "é/ü", "d\\e", ".a", ".."]

SIZE_UNKNOWN, SIZE_EXACT, SIZE_WRONG, SIZE_NEGATIVE = 0, 1, 2, 3
GEN_ABSENT, GEN_ZERO, GEN_CURRENT, GEN_OTHER = 0, 4, 8, 12
CRC_RIGHT, CRC_WRONG = 0x10, 0x20
NO_FINISH, CANCEL = 0x40, 0x80
FIRST_SPEC, FIRST_UPLOAD_ID, FIRST_NONE, FIRST_SPEC_TWICE, FIRST_BOTH = 0, 12, 13, 14, 15
OFF_EXACT, OFF_RESEND, OFF_GAP, OFF_NEGATIVE = 0, 1, 2, 3
MSG_CRC, MSG_CRC_WRONG, MSG_FINISH, MSG_OVERSIZE = 4, 4 | 8, 0x10, 0x20


def call(path, length, spec=SIZE_EXACT, first=FIRST_SPEC, pattern=7, messages=None,
         size_delta=0, generation=0):
    """One Upload call. messages: a list of (bits, extra bytes) per message."""
    messages = messages or [(0, b"")]
    if isinstance(path, int):
        out = bytes([path])
    else:
        raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
        out = bytes([0xE0, len(raw)]) + raw
    out += bytes([first, spec]) + struct.pack("<H", length) + bytes([pattern])
    if spec & 3 == SIZE_WRONG:
        out += struct.pack("<b", size_delta)
    if spec & 12 == GEN_OTHER:
        out += bytes([generation])
    out += bytes([len(messages) - 1])
    for bits, extra in messages:
        out += bytes([bits]) + extra
        if bits & MSG_FINISH:  # the target reads no further message
            break
    return out


def p(name):
    return PATHS.index(name)


def upload_seeds():
    a, b, dirf = p("a"), p("b"), p("dir/f")
    three = [(0, b""), (0, b""), (0, b"")]
    return {
        "commit_small": call(a, 100, SIZE_EXACT | CRC_RIGHT, messages=[(MSG_CRC, b"")]),
        "commit_empty": call(b, 0, SIZE_UNKNOWN),
        "commit_nested_three_messages": call(dirf, 4000, SIZE_EXACT | CRC_RIGHT,
                                             messages=[(MSG_CRC, b"")] * 3),
        "commit_resend_overlap": call(a, 3000, SIZE_EXACT, messages=[
            (0, b""), (OFF_RESEND, bytes([200])), (OFF_RESEND | MSG_CRC, bytes([17]))]),
        "commit_early_finish": call(b, 3000, SIZE_UNKNOWN, messages=[
            (0, b""), (MSG_FINISH, b""), (0, b"")]),
        "commit_utf8_and_backslash": call(p("é/ü"), 10) + call(p("d\\e"), 10),
        "overwrite_then_preconditions": (
            call(b, 50) + call(b, 60, SIZE_EXACT | GEN_CURRENT)
            + call(b, 70, SIZE_EXACT | GEN_ZERO) + call(b, 80, SIZE_EXACT | GEN_OTHER,
                                                        generation=3)),
        "if_absent_new_path": call(a, 20, SIZE_EXACT | GEN_ZERO),
        "resume_by_upload_id": call(a, 10, first=FIRST_UPLOAD_ID),
        "upload_id_after_spec": call(a, 10, first=FIRST_BOTH),
        "finish_without_spec": call(a, 10, first=FIRST_NONE, messages=[(MSG_FINISH, b"")]),
        "spec_twice": call(a, 100, first=FIRST_SPEC_TWICE, messages=[(0, b""), (0, b"")]),
        "offset_gap": call(a, 2000, messages=[(0, b""), (OFF_GAP, bytes([0]))]),
        "offset_negative": call(a, 100, messages=[(OFF_NEGATIVE, bytes([0]))]),
        "message_crc_mismatch": call(a, 100, messages=[(MSG_CRC_WRONG, b"")]),
        "file_crc_mismatch": call(dirf, 100, SIZE_EXACT | CRC_WRONG),
        "size_short": call(a, 100, SIZE_WRONG, size_delta=5),
        "size_long": call(a, 100, SIZE_WRONG, size_delta=-5),
        "size_negative": call(a, 100, SIZE_NEGATIVE),
        "message_oversized": call(a, 100, messages=[(MSG_OVERSIZE, bytes([1]))]),
        "file_oversized_declared": call(a, 5500, SIZE_EXACT, messages=[(0, b"")] * 4),
        "file_oversized_streamed": call(a, 5999, SIZE_UNKNOWN, messages=[(0, b"")] * 4),
        "half_close_without_finish": call(a, 3000, SIZE_EXACT | NO_FINISH, messages=three),
        "cancel_mid_stream": call(dirf, 3000, SIZE_EXACT | CANCEL, messages=three),
        "below_a_file": call(a, 10) + call(p("a/x"), 10),
        "file_over_directory": call(dirf, 10) + call(p("dir"), 10),
        "traversal_dotdot": call(p("../x"), 10) + call(p("dir/../a"), 10)
        + call("../../etc/passwd", 10) + call(p(".."), 10),
        "private_dir": call(p(".ringstore/x"), 10) + call(p(".ringstore/tmp/y"), 10)
        + call(p(".ringstore"), 10) + call(".ringstore/tmp", 10),
        "malformed_paths": call(p("a//b"), 10) + call(p("./a"), 10) + call(p("/abs"), 10)
        + call(p(""), 10),
        "malformed_paths_bytes": call(p("dir/"), 10) + call(p("x\xC0\xAF"), 10)
        + call(p("c" * 256), 10) + call(b"nul\x00byte", 10),
    }


def header(present, path=b"", size=0, generation=0, seconds=0, nanos=0, info_crc=0,
           backend=0, offset=0, crc=0):
    out = bytes([present])
    if present & 1:
        out += bytes([len(path)]) + path + struct.pack("<qq", size, generation)
        if present & 2:
            out += struct.pack("<qi", seconds, nanos)
        out += struct.pack("<I", info_crc)
    if present & 4:
        out += struct.pack("<i", backend)
    if present & 8:
        out += struct.pack("<q", offset)
    if present & 16:
        out += struct.pack("<I", crc)
    return out


def varint(v):
    v &= (1 << 64) - 1
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def download_request(path, offset=0, limit=0, generation=None):
    out = b"\x0a" + varint(len(path)) + path
    if offset:
        out += b"\x10" + varint(offset)
    if limit:
        out += b"\x18" + varint(limit)
    if generation is not None:
        out += b"\x20" + varint(generation)
    return out


def download_seeds():
    full = header(31, b"dir/file", 300000, 1700000000000000, 1700000000, 999999999, 0xE3069283,
                  1, 4096, 1234)
    request = download_request(b"a/b", 5, 10, 7)
    return {
        "nothing": b"",
        "header_only": full + struct.pack("<H", 0) + b"\x00\x00",
        "data_100": full + struct.pack("<H", 100) + bytes(range(100)) + b"\x00\x00",
        # Presence bit 32: the data goes out as a copy, not lent from the pool.
        "data_100_copied": bytes([full[0] | 32]) + full[1:] + struct.pack("<H", 100)
        + bytes(range(100)) + b"\x00\x00",
        "data_127_varint_edge": header(0) + struct.pack("<H", 127) + b"x" * 127 + b"\x00\x00",
        "data_128_varint_edge": header(0) + struct.pack("<H", 128) + b"y" * 128 + b"\x00\x00",
        "data_whole_buffer": header(1, b"big") + struct.pack("<H", 65535) + b"\x00\x00",
        "negative_numbers": header(31, "é/\\".encode(), -1, -2, -3, -4, 0xFFFFFFFF, -5, -6,
                                   0xFFFFFFFF) + struct.pack("<H", 3) + b"abc" + b"\x00\x00",
        "unknown_backend": header(4, backend=99) + struct.pack("<H", 1) + b"z" + b"\x00\x00",
        "request_one_slice": header(0) + struct.pack("<H", 0) + b"\xff\x00" + request,
        "request_three_slices": header(0) + struct.pack("<H", 0) + b"\x02\x03" + request,
        "request_negative_offset": header(0) + struct.pack("<H", 0) + b"\x00\x00"
        + download_request(b"x", -1, -1, -1),
        "request_truncated": header(0) + struct.pack("<H", 0) + b"\x01\x00" + b"\x0a\x05ab",
        "request_wrong_wire_type": header(0) + struct.pack("<H", 0) + b"\x00\x00"
        + b"\x08\x01\x12\x00",
        "request_unknown_field": header(0) + struct.pack("<H", 0) + b"\x00\x00"
        + download_request(b"p") + b"\xf8\x07\x01",
    }


def write(target, seeds):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    write("upload_fuzz", upload_seeds())
    write("download_message_fuzz", download_seeds())
