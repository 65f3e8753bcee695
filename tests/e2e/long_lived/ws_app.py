#!/usr/bin/env python3
"""A WebSocket app for tests/e2e/long_lived_test.cc (Debian's python3-websockets): sends each
client numbered messages, every seventh one 300 kB (many reads long), until the client closes;
prints one JSON line per closing handshake it saw, with the client's close code."""
import argparse
import asyncio
import json

import websockets


def message(n):
    size = 300_000 if n % 7 == 3 else 64
    head = f"{n}:{size}:"
    return head + "x" * (size - len(head))


async def handler(ws, path=None):
    sent = 0
    try:
        while True:
            await ws.send(message(sent))
            sent += 1
            await asyncio.sleep(0.005)
    except websockets.ConnectionClosed:
        pass
    print(json.dumps({"closed": True, "code": ws.close_code, "sent": sent}), flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    async with websockets.serve(handler, "127.0.0.1", args.port, max_size=None,
                                compression=None) as server:
        print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
        await asyncio.Future()


asyncio.run(main())
