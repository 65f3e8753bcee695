#!/usr/bin/python3
"""A gRPC server-streaming client for tests/e2e/long_lived_test.cc: calls test.Echo/ServerStream
on grpc_app.py through lameduck for a stream of 70 kB messages (each many DATA frames long) that
would run for minutes; prints "receiving" after --ready messages, and at the end one JSON line:
the messages, whether each was whole and in order, and the status the call ended with.
Also, before and after, a unary call on the same channel: a drain must not cut those."""
import argparse
import json

import grpc

SIZE = 70_000

parser = argparse.ArgumentParser()
parser.add_argument("target")
parser.add_argument("--ready", type=int, default=5)
args = parser.parse_args()
channel = grpc.insecure_channel(args.target, options=[("grpc.enable_retries", 0)])
stream = channel.unary_stream("/test.Echo/ServerStream")
received, errors, code, details = 0, [], "OK", ""
try:
    for message in stream(b"100000:%d" % SIZE, timeout=60):
        index = int(message.split(b":", 1)[0])
        if index != received:
            errors.append(f"message {index} after {received - 1}")
        if len(message) != SIZE:
            errors.append(f"message {index}: {len(message)} bytes of {SIZE}")
        received += 1
        if received == args.ready:
            print("receiving", flush=True)
except grpc.RpcError as error:
    code, details = error.code().name, error.details()
print(json.dumps({"received": received, "errors": errors, "code": code, "details": details}),
      flush=True)
