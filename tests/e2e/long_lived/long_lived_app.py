#!/usr/bin/python3
"""The app of the long-lived rollout (long_lived_rollout.py), with Debian's python3-aiohttp:
GET /ws a WebSocket of numbered messages (every seventh 300 kB, many reads long), GET /events an
event stream of numbered events (every fifth 40 lines long, each event in two writes) that
starts after the Last-Event-ID the client sends. Naive on purpose: SIGTERM ends it at once.
Prints "listening PORT"."""
import argparse
import asyncio
import socket

from aiohttp import web


def message(n):
    size = 300_000 if n % 7 == 3 else 64
    head = f"{n}:{size}:"
    return head + "x" * (size - len(head))


def event(n):
    lines = 40 if n % 5 == 2 else 1
    body = "".join(f"data: {n} line {i} of {lines}\n" for i in range(lines))
    return f"id: {n}\n{body}\n".encode()


async def websocket(request):
    ws = web.WebSocketResponse(compress=False, max_msg_size=0)
    await ws.prepare(request)

    async def send():
        n = 0
        while not ws.closed:
            await ws.send_str(message(n))
            n += 1
            await asyncio.sleep(0.01)

    sender = asyncio.create_task(send())
    async for _ in ws:  # until the closing handshake, which aiohttp answers
        pass
    sender.cancel()
    return ws


async def events(request):
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    n = int(request.headers.get("Last-Event-ID", "-1")) + 1
    try:
        while True:
            data = event(n)
            await response.write(data[:len(data) // 2])
            await asyncio.sleep(0.003)
            await response.write(data[len(data) // 2:])
            n += 1
            await asyncio.sleep(0.01)
    except ConnectionResetError:
        pass  # the client (or lameduck, ending the stream at a drain) went away
    return response


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    sock = socket.socket()
    sock.bind(("127.0.0.1", args.port))
    print(f"listening {sock.getsockname()[1]}", flush=True)
    app = web.Application()
    app.add_routes([web.get("/ws", websocket), web.get("/events", events)])
    web.run_app(app, sock=sock, handle_signals=False, print=None)


main()
