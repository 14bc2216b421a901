"""Churns loopback ports as a busy machine does, for the port-race tests: standard library only.

Opens outgoing connections to a listener of its own at ``--rate`` per second and keeps the last
``--connections`` of them open (closed with a reset, so no TIME_WAIT is left): every ephemeral port in use
is a port another process cannot bind. Half of them bind port 0 before connecting, as a client choosing its
source address does, and every tenth round a listener binds port 0 for a moment, as a proxy would: the OS
hands out those from the same range as a "free port" probe. Runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import signal
import socket
import struct
import sys
import threading
import time

RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def accept_forever(listener: socket.socket) -> None:
    while True:
        try:
            accepted, _ = listener.accept()
        except OSError:
            return
        accepted.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    threading.Thread(target=accept_forever, args=(listener,), daemon=True).start()
    target = listener.getsockname()
    held: collections.deque[socket.socket] = collections.deque()
    print(f"churning at {args.rate:g}/s, {args.connections} held", flush=True)
    try:
        churn(target, held, args.connections, 1.0 / args.rate)
    finally:  # SIGTERM: every socket closed, none left to a finalizer
        while held:
            held.popleft().close()
        listener.close()


def churn(
    target: tuple[str, int], held: collections.deque[socket.socket], keep: int, interval: float
) -> None:
    n = 0
    next_at = time.monotonic()
    while True:
        n += 1
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
        try:
            if n % 2:
                client.bind(("127.0.0.1", 0))
            client.connect(target)
        except OSError:
            client.close()
        else:
            held.append(client)
        while len(held) > keep:
            held.popleft().close()
        if n % 10 == 0:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                probe.listen()
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        elif pause < -1.0:
            next_at = time.monotonic()  # behind by a second: a busy machine; do not try to catch up


if __name__ == "__main__":
    main()
