"""What the Python rollouts (grpc/grpc_rollout.py, long_lived/long_lived_rollout.py) play of
Kubernetes, as tests/e2e/rollout_test.cc does for HTTP/1.1: a pod (an app behind its own
lameduck), kubelet's termination of a native sidecar pod, and kube-proxy.

kube-proxy: a TCP balancer that spreads new connections over the current endpoints and keeps
open ones pinned to their pod after it leaves the endpoints. kubelet, for a native sidecar: the
app container's preStop (`lameduck drain --wait`), then SIGTERM to the app, then, once it has
exited, SIGTERM to lameduck.
"""
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pod:
    """`app` is a command that prints "listening PORT" first (it picks its own port: one chosen
    here and bound later could be taken meanwhile); lameduck goes in front with `flags`."""

    def __init__(self, lameduck, app, flags):
        self.lameduck_binary = lameduck
        self.app = subprocess.Popen(app, stdout=subprocess.PIPE, text=True)
        app_port = int(self.app.stdout.readline().split()[1])  # "listening PORT"
        if app_port == 0:
            raise RuntimeError("the app could not listen")
        self.port, self.admin = free_port(), free_port()
        self.lameduck = subprocess.Popen(
            [lameduck, "--listen", "127.0.0.1:%d" % self.port, "--admin",
             "127.0.0.1:%d" % self.admin, "--upstream", "127.0.0.1:%d" % app_port] + flags,
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
        """kubelet deleting the pod; with drain False, the preStop is skipped."""
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

    def kill(self):
        self.app.kill()
        self.lameduck.kill()


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


def roll(pods, balancer, make_pod, drain, clock):
    """Replaces each pod in turn (maxSurge 1: the new one is ready before the old one goes); the
    old pod's endpoint is removed 1, 2, 3 s after its deletion starts. Returns the terminations."""
    terminations = []
    for i, lag in enumerate((1.0, 2.0, 3.0)):
        fresh = make_pod()
        old, pods[i] = pods[i], fresh
        balancer.set_endpoints([p.port for p in pods] + [old.port])
        removed = []

        def remove_endpoint(lag=lag):
            time.sleep(lag)
            balancer.set_endpoints(p.port for p in pods)
            removed.append(clock())

        controller = threading.Thread(target=remove_endpoint)
        controller.start()
        terminations.append(old.terminate(drain, clock))
        controller.join()
        terminations[-1]["at"]["endpoint_removed"] = removed[0]
    return terminations
