#!/usr/bin/env python3
"""A WebSocket client for tests/e2e/long_lived_test.cc: reads the app's numbered messages through
lameduck, checks each is whole and none is missing, prints "receiving" once it has --ready of
them, and at the end one JSON line: how the connection closed and what it saw."""
import argparse
import asyncio
import json

import websockets


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--ready", type=int, default=20)
    args = parser.parse_args()
    received, errors, abnormal = 0, [], None
    async with websockets.connect(args.url, max_size=None, compression=None, open_timeout=5,
                                  close_timeout=10) as ws:
        try:
            async for msg in ws:
                n, size, _ = msg.split(":", 2)
                if int(n) != received:
                    errors.append(f"message {n} after {received - 1}")
                if len(msg) != int(size):
                    errors.append(f"message {n}: {len(msg)} bytes of {size}")
                received += 1
                if received == args.ready:
                    print("receiving", flush=True)
        except websockets.ConnectionClosedError as error:
            abnormal = str(error)
    print(json.dumps({"received": received, "errors": errors, "code": ws.close_code,
                      "reason": ws.close_reason, "abnormal": abnormal}), flush=True)


asyncio.run(main())
