#!/usr/bin/env python3
"""A small webhook receiver that counts the click events clickstream delivers to it.

    python3 benches/compare/receiver.py --port 18092

- ``POST`` or ``PUT`` any path: the body is clickstream's webhook payload,
  ``{"data": [event, ...], "key": "..."}``; the receiver adds the number of events to its count,
  remembers each event ``id`` (delivery is at least once, so unique ids are counted too) and
  answers ``200``. A body that is not such a payload answers ``400`` and counts as bad.
- ``GET /count`` answers ``{"events": N, "unique": U, "requests": R, "bad": B}``.

The receiver shares the machine with the servers under test, so it stays cheap: the event ids
are found with one regular expression (an event object starts with its UUID ``id``; the other
``id`` fields of an event are not UUIDs), which costs about 1 µs per event where ``json.loads``
costs 10 to 30. Every ``--verify-every``-th body is also kept and, when the counts are next
read (after the load), parsed in full: it must give the same ids as ``data``, in order, or it
counts as bad. Parsing them while the load runs would take CPU from the servers under test. It
listens on 127.0.0.1 only and keeps connections alive (HTTP/1.1).
"""
import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Counts:
    """Totals shared by the handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = 0
        self.requests = 0
        self.bad = 0
        self.ids = set()
        # (body, ids found by the fast count) still to be checked by a full parse.
        self.to_verify = []

    def snapshot(self):
        with self.lock:
            pending, self.to_verify = self.to_verify, []
        bad = sum(1 for body, ids in pending if full_parse_ids(body) != ids)
        with self.lock:
            self.bad += bad
            return {"events": self.events, "unique": len(self.ids), "requests": self.requests, "bad": self.bad}


COUNTS = Counts()
EVENT_ID = re.compile(rb'\{"id":"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"')
VERIFY_EVERY = 20


def event_ids(body):
    """The event ids of a webhook body, or None when it is not a clickstream payload."""
    if not body.startswith(b'{"data":['):
        return None
    ids = EVENT_ID.findall(body)
    # Every event has exactly one "timestamp" key: a cheap cross-check of the count.
    if len(ids) != body.count(b'"timestamp":"'):
        return None
    return ids


def full_parse_ids(body):
    """The event ids of a webhook body by a full JSON parse, or None when it does not parse."""
    try:
        return [event["id"].encode() for event in json.loads(body)["data"]]
    except (ValueError, KeyError, TypeError):
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the benchmark's output clean
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/count":
            self.answer(200, json.dumps(COUNTS.snapshot()).encode())
        else:
            self.answer(404)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        ids = event_ids(body)
        if ids is None:
            with COUNTS.lock:
                COUNTS.requests += 1
                COUNTS.bad += 1
            self.answer(400)
            return
        with COUNTS.lock:
            if COUNTS.requests % VERIFY_EVERY == 0:
                COUNTS.to_verify.append((body, ids))
            COUNTS.requests += 1
            COUNTS.events += len(ids)
            COUNTS.ids.update(ids)
        self.answer(200)

    do_PUT = do_POST


def main():
    global VERIFY_EVERY
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--verify-every", type=int, default=VERIFY_EVERY,
                    help="parse every N-th body in full, after the load, to check the fast count "
                         "(default %(default)s)")
    args = ap.parse_args()
    VERIFY_EVERY = max(1, args.verify_every)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
