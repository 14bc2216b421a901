"""Benchmark: GET /users/{id} on one users instance, and POST /orders through the whole saga.

The stack runs as real processes (registry, users x3, notifications, orchestrator); the load generator
is its own process, so it does not share an interpreter with anything it measures.

    python -m benchmarks.bench_services [--duration 5] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from harness.stack import Stack


def load(url: str, duration: float, concurrency: int, *extra: str) -> dict[str, object]:
    command = [sys.executable, "-m", "benchmarks._load", "--url", url, "--duration", str(duration),
               "--concurrency", str(concurrency), *extra]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, object] = json.loads(output)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    with Stack(workdir=Path(tempfile.mkdtemp(prefix="bench-services-"))) as stack:
        users_url = stack.instances("users")[0].url
        orchestrator_url = stack.url("orchestrator-1")
        print(f"stack up in {stack.started_in:.2f}s; users-1 {users_url}, orchestrator {orchestrator_url}")
        customer = {"id": "bench", "name": "Bench", "email": "bench@example.test", "credit": 10**12}
        httpx.post(f"{users_url}/users", json=customer, trust_env=False).raise_for_status()
        print(f"\n{'scenario':<36} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            scenarios = {
                "GET /users/{id} (users-1 only)": load(
                    f"{users_url}/users/bench", args.duration, concurrency
                ),
                "POST /orders (whole saga)": load(
                    f"{orchestrator_url}/orders", args.duration, concurrency, "--method", "POST",
                    "--json", '{"user_id": "bench", "amount": 1}', "--unique-header", "Idempotency-Key",
                ),
            }  # fmt: skip
            for name, r in scenarios.items():
                figures = f"{r['rps']:>8} {r['p50_ms']:>8} {r['p99_ms']:>8}"
                print(f"{name:<36} {concurrency:>4} {figures}  {r['statuses']}")


if __name__ == "__main__":
    main()
