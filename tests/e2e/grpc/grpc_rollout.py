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
import sys
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import kube  # noqa: E402 - tests/e2e/kube.py: the pod, kubelet and kube-proxy

FLAGS = ["--drain-delay", "3500ms", "--drain-timeout", "20s"]


def make_pod(lameduck):
    # The app picks its own port (0: gRPC binds with SO_REUSEPORT, so a port chosen here and
    # bound later could be shared with another test's app without an error).
    return kube.Pod(lameduck, [sys.executable, os.path.join(HERE, "grpc_app.py"), "--port", "0"],
                    FLAGS)


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
    pods = [make_pod(args.lameduck) for _ in range(3)]
    balancer = kube.Balancer()
    balancer.set_endpoints(p.port for p in pods)
    load = Load("127.0.0.1:%d" % balancer.port, args.channels)
    load.start()
    clock = lambda: round(time.time() - load.started, 2)  # noqa: E731 - seconds into the load
    time.sleep(1)
    terminations = kube.roll(pods, balancer, lambda: make_pod(args.lameduck),
                             args.mode == "drain", clock)
    time.sleep(0.5)
    load.finish()
    for pod in pods:
        pod.kill()
    print(json.dumps({"counts": load.counts, "errors": load.errors, "details": load.details,
                      "terminations": terminations,
                      "seconds": round(time.time() - started, 1)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
