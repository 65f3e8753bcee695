#!/usr/bin/env python3
"""An EventSource-like client for tests/e2e/long_lived_test.cc: reads events from the first
address; when the stream ends (a drain), reconnects to the second with Last-Event-ID, as a
browser would through the Service, and reads --after more events there. Prints "receiving"
once it has --ready events, and at the end one JSON line: events seen, gaps, partial events."""
import argparse
import http.client
import json


def read_events(host, port, last_id, limit, on_event):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    conn.request("GET", "/events", headers=headers)
    response = conn.getresponse()
    lines, count = [], 0
    while count < limit:
        try:
            raw = response.readline()
        except http.client.IncompleteRead:
            return True, False  # cut: no last chunk
        if not raw:
            break  # the end of the body (its last chunk)
        line = raw.decode().rstrip("\r\n")
        if line == "":
            if lines:
                on_event(lines)
                count += 1
            lines = []
        else:
            lines.append(line)
    conn.close()
    return bool(lines), True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--ready", type=int, default=20)
    parser.add_argument("--after", type=int, default=10)
    args = parser.parse_args()
    state = {"last": None, "seen": 0, "errors": [], "phase": 0, "second": 0}

    def on_event(lines):
        n = int(lines[0].split(": ", 1)[1])
        expected = 0 if state["last"] is None else state["last"] + 1
        if n != expected:
            state["errors"].append(f"event {n} after {state['last']}")
        data = [l for l in lines[1:] if l.startswith("data: ")]
        want = 40 if n % 5 == 2 else 1
        if len(data) != want:
            state["errors"].append(f"event {n}: {len(data)} lines of {want}")
        state["last"] = n
        state["seen"] += 1
        if state["phase"] == 1:
            state["second"] += 1
        if state["seen"] == args.ready:
            print("receiving", flush=True)

    host, port = args.first.rsplit(":", 1)
    partial_first, whole_first = read_events(host, int(port), None, 10**9, on_event)
    ended_at = state["last"]
    state["phase"] = 1
    host, port = args.second.rsplit(":", 1)
    read_events(host, int(port), state["last"], args.after, on_event)
    print(json.dumps({"seen": state["seen"], "errors": state["errors"],
                      "partial_at_end": partial_first, "body_whole": whole_first,
                      "first_stream_ended_after": ended_at,
                      "second": state["second"]}), flush=True)


main()
