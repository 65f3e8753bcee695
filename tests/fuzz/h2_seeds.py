#!/usr/bin/python3
"""Writes the seed corpora of fuzz_h2_client and fuzz_h2_upstream (tests/fuzz/corpus/): valid
HTTP/2 frame sequences to start from. Byte 0 of each seed is 0 (no split points)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(
        ">I", stream) + payload


DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1
AUTHORITY = b"\x01\x01a"  # :authority "a", literal without indexing
GET = b"\x82\x86\x84" + AUTHORITY
POST = b"\x83\x86\x84" + AUTHORITY
GRPC = POST + b"\x00\x0ccontent-type\x10application/grpc\x00\x02te\x08trailers"

client = {
    "get": frame(HEADERS, END_STREAM | END_HEADERS, 1, GET),
    "post": frame(HEADERS, END_HEADERS, 1, POST) + frame(DATA, 0, 1, b"hello ")
    + frame(DATA, END_STREAM, 1, b"world"),
    "post_length": frame(HEADERS, END_HEADERS, 1, POST + b"\x00\x0econtent-length\x015")
    + frame(DATA, END_STREAM, 1, b"hello"),
    "grpc_trailers": frame(HEADERS, END_HEADERS, 1, GRPC) + frame(DATA, 0, 1, b"\0\0\0\0\2hi")
    + frame(HEADERS, END_STREAM | END_HEADERS, 1, b"\x00\x03x-t\x01v"),
    "reset": frame(HEADERS, END_HEADERS, 1, POST) + frame(RST, 0, 1, struct.pack(">I", 8)),
    "continuation": frame(HEADERS, END_STREAM, 1, GET[:2]) + frame(CONTINUATION, END_HEADERS, 1,
                                                                     GET[2:]),
    "control": frame(PING, 0, 0, b"12345678") + frame(SETTINGS, ACK, 0)
    + frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000))
    + frame(HEADERS, END_STREAM | END_HEADERS, 1, GET),
    "many": b"".join(frame(HEADERS, END_STREAM | END_HEADERS, i, GET) for i in range(1, 20, 2)),
    "goaway": frame(HEADERS, END_STREAM | END_HEADERS, 1, GET)
    + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)),
}
STATUS_200 = b"\x88"
upstream = {
    "ok": frame(SETTINGS, 0, 0) + frame(SETTINGS, ACK, 0) + frame(HEADERS, END_HEADERS, 1,
                                                                    STATUS_200)
    + frame(DATA, END_STREAM, 1, b"ok"),
    "trailers": frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, STATUS_200)
    + frame(DATA, 0, 1, b"body") + frame(HEADERS, END_STREAM | END_HEADERS, 1,
                                         b"\x00\x0bgrpc-status\x010"),
    "trailers_only": frame(SETTINGS, 0, 0) + frame(
        HEADERS, END_STREAM | END_HEADERS, 1, STATUS_200 + b"\x00\x0bgrpc-status\x0214"),
    "reset": frame(SETTINGS, 0, 0) + frame(RST, 0, 1, struct.pack(">I", 7)),
    "reset_mid": frame(SETTINGS, 0, 0) + frame(HEADERS, END_HEADERS, 1, STATUS_200)
    + frame(RST, 0, 1, struct.pack(">I", 2)),
    "goaway": frame(SETTINGS, 0, 0) + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)),
    "limits": frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 1) + struct.pack(">HI", 4, 10))
    + frame(HEADERS, END_HEADERS, 1, STATUS_200) + frame(DATA, END_STREAM, 1, b"0123456789"),
}
for target, seeds in (("fuzz_h2_client", client), ("fuzz_h2_upstream", upstream)):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    for name, payload in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(b"\0" + payload)
