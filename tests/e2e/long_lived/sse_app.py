#!/usr/bin/env python3
"""An SSE app for tests/e2e/long_lived_test.cc: GET /events streams numbered events (chunked,
some of them many lines long, split across writes) every few milliseconds, starting after the
Last-Event-ID the client sends."""
import argparse
import http.server
import time


def event(n):
    lines = 40 if n % 5 == 2 else 1
    body = "".join(f"data: {n} line {i} of {lines}\n" for i in range(lines))
    return f"id: {n}\n{body}\n".encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self):
        start = int(self.headers.get("Last-Event-ID", "-1")) + 1
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        n = start
        try:
            while True:
                data = event(n)
                half = len(data) // 2  # an event in two writes: a drain may come between
                self.chunk(data[:half])
                time.sleep(0.002)
                self.chunk(data[half:])
                n += 1
                time.sleep(0.003)
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


main()
