#!/usr/bin/python3
"""The long-lived rollout: three pods, each a naive app (long_lived_app.py: WebSockets and an
event stream; SIGTERM ends it at once) behind its own lameduck, rolled one by one (tests/e2e/
kube.py) while WebSocket and EventSource-like clients stay connected through kube-proxy and
reconnect whenever their connection ends, as browsers do.

Checked for every connection: how it ended (WebSocket close code; an event stream's clean end
or a cut), that no message or event arrived cut short, and that the event ids run on without
a gap across reconnections (Last-Event-ID). Also when each reconnection happened: the largest
number within any 100 ms is the reconnect burst the drain's spread is there to flatten.

--mode nodrain skips the preStop, as a pod without lameduck's drain would: connections are cut
then, which shows this test can fail. Prints one JSON object.
"""
import argparse
import asyncio
import json
import os
import sys
import threading
import time

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import kube  # noqa: E402 - tests/e2e/kube.py: the pod, kubelet and kube-proxy

ABNORMAL = 1006  # a WebSocket that ended without a closing handshake


class Clients:
    """WebSocket and SSE clients on one asyncio loop, in a thread of their own."""

    def __init__(self, target, websockets, streams):
        self.target = target
        self.stop = False
        self.started = time.time()
        self.ws = {"connections": 0, "closes": {}, "errors": [], "messages": 0}
        self.sse = {"streams": 0, "clean_ends": 0, "cuts": 0, "errors": [], "events": 0}
        self.reconnects = []  # seconds into the run, of every reconnection
        self.thread = threading.Thread(target=lambda: asyncio.run(self.run(websockets, streams)))

    def clock(self):
        return round(time.time() - self.started, 3)

    async def run(self, websockets, streams):
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*[self.websocket(session) for _ in range(websockets)],
                                 *[self.events(session) for _ in range(streams)])

    async def websocket(self, session):
        url = "http://%s/ws" % self.target
        while not self.stop:
            expected, code = 0, None
            try:
                async with session.ws_connect(url, max_msg_size=0, autoclose=True) as ws:
                    self.ws["connections"] += 1
                    while not self.stop:
                        try:
                            msg = await ws.receive(timeout=0.5)
                        except asyncio.TimeoutError:
                            continue
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        n, size, _ = msg.data.split(":", 2)
                        if int(n) != expected or len(msg.data) != int(size):
                            self.ws["errors"].append("%s: message %s (%d of %s bytes) after %d" % (
                                self.clock(), n, len(msg.data), size, expected - 1))
                        expected += 1
                        self.ws["messages"] += 1
                    code = ws.close_code if not self.stop else None
            except (aiohttp.ClientError, OSError) as error:
                code = "connect: %s" % type(error).__name__
            if code is not None:
                self.ws["closes"][str(code)] = self.ws["closes"].get(str(code), 0) + 1
                self.reconnects.append(self.clock())
            await asyncio.sleep(0.05)

    async def events(self, session):
        url = "http://%s/events" % self.target
        last = None
        while not self.stop:
            headers = {} if last is None else {"Last-Event-ID": str(last)}
            lines, ended = [], None
            try:
                async with session.get(url, headers=headers) as response:
                    self.sse["streams"] += 1
                    while not self.stop:
                        try:
                            raw = await asyncio.wait_for(response.content.readline(), 0.5)
                        except asyncio.TimeoutError:
                            continue
                        if not raw:
                            ended = "clean"  # the body's end: its last chunk came
                            break
                        line = raw.decode().rstrip("\n")
                        if line:
                            lines.append(line)
                            continue
                        n = int(lines[0].split(": ", 1)[1])
                        want = 40 if n % 5 == 2 else 1
                        if (last is not None and n != last + 1) or len(lines) != want + 1:
                            self.sse["errors"].append("%s: event %d (%d lines) after %s" % (
                                self.clock(), n, len(lines) - 1, last))
                        last = n
                        lines = []
                        self.sse["events"] += 1
                    if self.stop:
                        response.close()  # an endless body: do not wait for its end
            except (aiohttp.ClientPayloadError, aiohttp.ClientError, OSError) as error:
                ended = "cut: %s" % type(error).__name__
            if ended == "clean" and not lines:
                self.sse["clean_ends"] += 1
            elif ended is not None and not self.stop:
                self.sse["cuts"] += 1
                self.sse["errors"].append("%s: stream %s with %d lines of an event" % (
                    self.clock(), ended, len(lines)))
            if ended is not None:
                self.reconnects.append(self.clock())
            await asyncio.sleep(0.05)


def largest_burst(times, window=0.1):
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lameduck", required=True)
    parser.add_argument("--mode", choices=["drain", "nodrain"], default="drain")
    parser.add_argument("--websockets", type=int, default=12)
    parser.add_argument("--streams", type=int, default=12)
    parser.add_argument("--drain-spread", default="1s")
    args = parser.parse_args()
    flags = ["--drain-delay", "3500ms", "--drain-timeout", "20s", "--drain-spread",
             args.drain_spread]
    app = [sys.executable, os.path.join(HERE, "long_lived_app.py"), "--port", "0"]
    make_pod = lambda: kube.Pod(args.lameduck, app, flags)  # noqa: E731
    started = time.time()
    pods = [make_pod() for _ in range(3)]
    balancer = kube.Balancer()
    balancer.set_endpoints(p.port for p in pods)
    clients = Clients("127.0.0.1:%d" % balancer.port, args.websockets, args.streams)
    clients.thread.start()
    time.sleep(1.5)
    terminations = kube.roll(pods, balancer, make_pod, args.mode == "drain", clients.clock)
    time.sleep(1)
    clients.stop = True
    clients.thread.join(30)
    for pod in pods:
        pod.kill()
    print(json.dumps({"websocket": clients.ws, "sse": clients.sse,
                      "reconnects": len(clients.reconnects),
                      "largest_burst_100ms": largest_burst(clients.reconnects),
                      "terminations": terminations,
                      "seconds": round(time.time() - started, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
