#!/usr/bin/python3
"""gRPC calls of every kind through TARGET (lameduck in front of grpc_app.py); prints one JSON
object: each check's name and whether it passed (with what it saw when not). No retries."""
import json
import sys

import grpc

target = sys.argv[1]
limit = 16 * 1024 * 1024
channel = grpc.insecure_channel(target, options=[
    ("grpc.enable_retries", 0), ("grpc.max_receive_message_length", limit),
    ("grpc.max_send_message_length", limit)])
results = {}


def check(name, fn):
    try:
        ok, seen = fn()
    except Exception as error:  # noqa: BLE001 - a test reports whatever failed
        ok, seen = False, repr(error)
    results[name] = {"ok": bool(ok), "seen": None if ok else str(seen)[:300]}


unary = channel.unary_unary("/test.Echo/Unary")
server_stream = channel.unary_stream("/test.Echo/ServerStream")
client_stream = channel.stream_unary("/test.Echo/ClientStream")
bidi = channel.stream_stream("/test.Echo/Bidi")


def status_of(fn):
    try:
        fn()
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code(), error.details()


check("unary", lambda: (unary(b"hello", timeout=10) == b"hello", None))
big = bytes(range(256)) * (8 * 1024 * 4)  # 8 MiB
check("unary_8mib", lambda: (unary(big, timeout=30) == big, "mismatch"))
check("server_stream", lambda: (
    lambda got: (len(got) == 20 and all(m.startswith(b"%d:" % i) for i, m in enumerate(got)), got))(
        list(server_stream(b"20:100", timeout=10))))
check("client_stream", lambda: (
    lambda got: (got == b"100000", got))(client_stream(iter([b"x" * 1000] * 100), timeout=10)))
check("bidi", lambda: (
    lambda got: (got == [b"m%d" % i for i in range(50)], got))(
        list(bidi(iter([b"m%d" % i for i in range(50)]), timeout=10))))
check("status_not_found", lambda: (
    lambda s: (s[0] == grpc.StatusCode.NOT_FOUND and "asked for status 5" in s[1], s))(
        status_of(lambda: unary(b"x", metadata=[("status", "5")], timeout=10))))
check("deadline", lambda: (
    lambda s: (s[0] == grpc.StatusCode.DEADLINE_EXCEEDED, s))(
        status_of(lambda: unary(b"x", metadata=[("sleep-ms", "2000")], timeout=0.3))))
check("many_concurrent", lambda: (
    lambda futures: (all(f.result() == b"c%d" % i for i, f in enumerate(futures)), None))(
        [unary.future(b"c%d" % i, timeout=10) for i in range(200)]))
print(json.dumps(results), flush=True)
