"""A user's own service for the harness to run: stock levels over HTTP, standard library only.

It knows nothing of the harness: no registry, no events, no fault switches. The topology next to this file
tells the stack how to start it (``--port``, ``INVENTORY_DB``, ``INVENTORY_INSTANCE``); the stack puts a
fault proxy in front of each instance and registers it on its behalf while ``/healthz`` answers 200.

    GET /healthz             {"status": "ok", "instance": "inventory-2"}
    GET /items/<sku>         {"sku": "widget", "stock": 7, "instance": "inventory-2"}  (404: unknown sku)
    PUT /items/<sku>         body {"stock": 7}: set the stock level (shared by every instance)
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Inventory(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like most services behind a load balancer

    def do_GET(self) -> None:
        if self.path == "/healthz":
            return self._answer(200, {"status": "ok"})
        sku = self._sku()
        rows = _query("SELECT stock FROM items WHERE sku = ?", sku)
        if not rows:
            return self._answer(404, {"error": "unknown_sku", "sku": sku})
        return self._answer(200, {"sku": sku, "stock": rows[0][0]})

    def do_PUT(self) -> None:
        sku = self._sku()
        try:
            stock = int(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))["stock"])
        except (ValueError, KeyError, TypeError):
            return self._answer(422, {"error": 'body must be {"stock": <int>}'})
        _query("INSERT INTO items VALUES (?, ?) ON CONFLICT(sku) DO UPDATE SET stock = ?", sku, stock, stock)
        return self._answer(200, {"sku": sku, "stock": stock})

    def _sku(self) -> str:
        return self.path.removeprefix("/items/") if self.path.startswith("/items/") else ""

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps({**body, "instance": os.environ.get("INVENTORY_INSTANCE", "inventory")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet: the harness keeps the log file
        pass


def _query(sql: str, *params: object) -> list[tuple[object, ...]]:
    """One statement in its own transaction on the shared database file (every instance uses it)."""
    db = sqlite3.connect(os.environ.get("INVENTORY_DB", "inventory.db"), timeout=5.0)
    try:
        with db:
            db.execute("CREATE TABLE IF NOT EXISTS items (sku TEXT PRIMARY KEY, stock INTEGER NOT NULL)")
            return db.execute(sql, params).fetchall()
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="The inventory example service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Inventory).serve_forever()


if __name__ == "__main__":
    main()
