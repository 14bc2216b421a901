"""A user's own service that is hard to stop, for the stack's cleanup tests: standard library only.

It binds ``--port`` and answers ``GET /health`` with 200. With ``--fork`` the process the stack started
hands its listening socket to a forked worker, which serves, and the worker forks a grandchild that only
sleeps (with ``--escape`` the grandchild leaves the process group for a session of its own, as a daemon
would). ``--ignore-term`` ignores SIGTERM in every one of them. ``--fail-first FILE`` answers the first
start (while FILE does not exist) as a service that lost its port would: "Address already in use", exit 1.
Every process appends ``role pid`` to ``--pids``, so a test knows what must be gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{os.getpid()}\n".encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def record(pids: Path, role: str) -> None:
    with pids.open("a", encoding="utf-8") as out:
        out.write(f"{role} {os.getpid()}\n")


def sleep_forever() -> None:
    while True:
        signal.pause()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pids", type=Path, required=True)
    parser.add_argument("--fork", action="store_true")
    parser.add_argument("--escape", action="store_true")
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--fail-first", type=Path)
    args = parser.parse_args()
    if args.fail_first is not None and not args.fail_first.exists():
        args.fail_first.touch()
        print(f"cannot listen on 127.0.0.1:{args.port}: [Errno 98] Address already in use", file=sys.stderr)
        sys.exit(1)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    server = HTTPServer(("127.0.0.1", args.port), Health)
    record(args.pids, "service")
    if not args.fork:
        server.serve_forever()
        return
    if os.fork() == 0:  # the worker: serves on the inherited socket
        record(args.pids, "worker")
        if os.fork() == 0:  # the grandchild: holds nothing, only lives
            if args.escape:
                os.setsid()
            record(args.pids, "grandchild")
            sleep_forever()
        server.serve_forever()
        return
    server.socket.close()  # only the worker holds the port now
    sleep_forever()


if __name__ == "__main__":
    main()
