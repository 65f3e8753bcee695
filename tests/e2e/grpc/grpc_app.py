#!/usr/bin/python3
"""A gRPC app for lameduck's tests: python3-grpcio with generic handlers and raw bytes (no protoc).

Service test.Echo:
  Unary(bytes) -> bytes              the request back; metadata "sleep-ms" waits first, "status"
                                     answers with that gRPC status code instead
  ServerStream(bytes) -> stream      "count:size" -> count messages of size bytes, 20 ms apart
  ClientStream(stream) -> bytes      the total length of what was sent, as decimal text
  Bidi(stream) -> stream             each message back as it comes

It listens on 127.0.0.1:PORT (--port, 0 for any) and prints "listening PORT". Naive on purpose,
like most apps: SIGTERM ends it at once (Python's default), whatever is in flight.
"""
import argparse
import sys
import time
from concurrent import futures

import grpc


def metadata(context):
    return dict(context.invocation_metadata())


def unary(request, context):
    md = metadata(context)
    if "sleep-ms" in md:
        time.sleep(int(md["sleep-ms"]) / 1000)
    if "status" in md:
        code = next(c for c in grpc.StatusCode if c.value[0] == int(md["status"]))
        context.abort(code, "asked for status " + md["status"])
    return request


def server_stream(request, context):
    count, size = (int(x) for x in request.decode().split(":"))
    for i in range(count):
        yield (str(i).encode() + b":").ljust(size, b"x")
        time.sleep(0.02)


def client_stream(requests, context):
    return str(sum(len(r) for r in requests)).encode()


def bidi(requests, context):
    for request in requests:
        yield request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handler = grpc.method_handlers_generic_handler("test.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    })
    limit = 16 * 1024 * 1024
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32),
                         options=[("grpc.max_receive_message_length", limit),
                                  ("grpc.max_send_message_length", limit)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()
    print("listening %d" % port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
