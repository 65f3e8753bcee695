#!/usr/bin/python3
"""The gRPC rollout, played the way Kubernetes plays it (as tests/e2e/rollout_test.cc does for
HTTP/1.1): three pods, each a naive gRPC app (grpc_app.py: SIGTERM ends it at once) behind its
own lameduck, rolled one by one under steady load from long-lived client channels.

kube-proxy: a TCP balancer that spreads new connections over the current endpoints and keeps
open ones pinned to their pod after it leaves the endpoints (removed 1, 2, 3 s after deletion
starts). kubelet, for a native sidecar: the app container's preStop (`lameduck drain --wait`),
then SIGTERM to the app, then, once it has exited, SIGTERM to lameduck. The clients never retry
(grpc.enable_retries 0): every failure counts.

--mode nodrain skips the preStop, as a pod without lameduck's drain would: calls fail then, which
shows this test can fail. Prints one JSON object with the counts.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pod:
    def __init__(self, lameduck):
        self.lameduck_binary = lameduck
        # The app picks its own port (0: gRPC binds with SO_REUSEPORT, so a port chosen here
        # and bound later could be shared with another test's app without an error).
        self.app = subprocess.Popen([sys.executable, os.path.join(HERE, "grpc_app.py"), "--port",
                                     "0"], stdout=subprocess.PIPE, text=True)
        app_port = int(self.app.stdout.readline().split()[1])  # "listening PORT"
        if app_port == 0:
            raise RuntimeError("the gRPC app could not listen")
        self.port, self.admin = free_port(), free_port()
        self.lameduck = subprocess.Popen(
            [lameduck, "--listen", "127.0.0.1:%d" % self.port, "--admin",
             "127.0.0.1:%d" % self.admin, "--upstream", "127.0.0.1:%d" % app_port,
             "--drain-delay", "3500ms", "--drain-timeout", "20s"],
            stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/ready" % self.admin, timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("pod did not become ready")

    def terminate(self, drain, clock):
        result = {"pre_stop": None, "at": {"terminate": clock()}}
        if drain:
            result["pre_stop"] = subprocess.run(
                [self.lameduck_binary, "drain", "--wait", "--admin", "127.0.0.1:%d" % self.admin],
                stdout=subprocess.DEVNULL, timeout=30).returncode
        result["at"]["app_sigterm"] = clock()
        self.app.send_signal(signal.SIGTERM)  # the naive app dies at once
        self.app.wait(30)
        self.lameduck.send_signal(signal.SIGTERM)  # sidecars stop after the main containers
        result["lameduck_exit"] = self.lameduck.wait(30)
        for line in self.lameduck.stdout.read().splitlines():
            event = json.loads(line)
            if event.get("event") == "drain.complete":
                result["drain"] = event
        return result


class Balancer:
    """kube-proxy: a new connection goes to the next current endpoint and stays there."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.endpoints = []
        self.turn = 0
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def set_endpoints(self, ports):
        with self.lock:
            self.endpoints = list(ports)

    def accept_loop(self):
        while True:
            client, _ = self.listener.accept()
            with self.lock:
                port = self.endpoints[self.turn % len(self.endpoints)]
                self.turn += 1
            try:
                server = socket.create_connection(("127.0.0.1", port))
            except OSError:
                client.close()  # as a connection to a pod that is gone
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
        except OSError:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Load:
    def __init__(self, target, channels):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"unary_ok": 0, "slow_ok": 0, "stream_ok": 0, "failed": 0}
        self.errors = {}
        self.details = []  # the first few failures: when, and what they said
        self.started = time.time()
        self.threads = [threading.Thread(target=self.run, args=(target, i)) for i in range(channels)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def count(self, key):
        with self.lock:
            self.counts[key] += 1

    def run(self, target, seed):
        channel = grpc.insecure_channel(target, options=[("grpc.enable_retries", 0),
                                                         ("grpc.use_local_subchannel_pool", 1)])
        unary = channel.unary_unary("/test.Echo/Unary")
        stream = channel.unary_stream("/test.Echo/ServerStream")
        rng = random.Random(seed)
        while not self.stop.is_set():
            kind = rng.random()
            try:
                if kind < 0.1:
                    sleep = rng.randint(300, 800)
                    assert unary(b"slow", metadata=[("sleep-ms", str(sleep))], timeout=10) == b"slow"
                    self.count("slow_ok")
                elif kind < 0.3:
                    got = list(stream(b"5:100", timeout=10))
                    assert len(got) == 5, got
                    self.count("stream_ok")
                else:
                    assert unary(b"ping", timeout=10) == b"ping"
                    self.count("unary_ok")
            except (grpc.RpcError, AssertionError) as error:
                if isinstance(error, grpc.RpcError):
                    key = error.code().name
                    detail = "%s: %s" % (key, error.details())
                else:
                    key = detail = "wrong_reply"
                with self.lock:
                    self.counts["failed"] += 1
                    self.errors[key] = self.errors.get(key, 0) + 1
                    if len(self.details) < 8:
                        self.details.append("%.2f s %s" % (time.time() - self.started, detail))
            time.sleep(0.005)
        channel.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lameduck", required=True)
    parser.add_argument("--mode", choices=["drain", "nodrain"], default="drain")
    parser.add_argument("--channels", type=int, default=8)
    args = parser.parse_args()
    started = time.time()
    pods = [Pod(args.lameduck) for _ in range(3)]
    balancer = Balancer()
    balancer.set_endpoints(p.port for p in pods)
    load = Load("127.0.0.1:%d" % balancer.port, args.channels)
    load.start()
    clock = lambda: round(time.time() - load.started, 2)  # noqa: E731 - seconds into the load
    time.sleep(1)
    terminations = []
    for i, lag in enumerate((1.0, 2.0, 3.0)):
        fresh = Pod(args.lameduck)  # maxSurge 1: ready before the old one goes
        old, pods[i] = pods[i], fresh
        balancer.set_endpoints([p.port for p in pods] + [old.port])

        removed = []

        def remove_endpoint(lag=lag):
            time.sleep(lag)
            balancer.set_endpoints(p.port for p in pods)
            removed.append(clock())

        controller = threading.Thread(target=remove_endpoint)
        controller.start()
        terminations.append(old.terminate(args.mode == "drain", clock))
        controller.join()
        terminations[-1]["at"]["endpoint_removed"] = removed[0]
    time.sleep(0.5)
    load.finish()
    for pod in pods:
        pod.app.kill()
        pod.lameduck.kill()
    print(json.dumps({"counts": load.counts, "errors": load.errors, "details": load.details,
                      "terminations": terminations,
                      "seconds": round(time.time() - started, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
