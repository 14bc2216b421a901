"""A closed-loop HTTP load generator meant to run in its own process; prints one JSON line of results.

python -m benchmarks._load --url URL [--method POST --json '{...}' --unique-header Idempotency-Key]
                           [--duration 5] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid

import httpx


async def run(args: argparse.Namespace) -> dict[str, object]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    body = json.loads(args.json) if args.json else None
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0, trust_env=False) as http:
        stop_at = time.perf_counter() + args.duration

        async def worker() -> None:
            while time.perf_counter() < stop_at:
                headers = {args.unique_header: uuid.uuid4().hex} if args.unique_header else None
                began = time.perf_counter()
                response = await http.request(args.method, args.url, json=body, headers=headers)
                latencies.append(time.perf_counter() - began)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3, 2)

    return {"requests": len(latencies), "rps": round(len(latencies) / elapsed, 1), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "statuses": statuses}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--json", help="request body")
    parser.add_argument("--unique-header", help="send a fresh uuid in this header on every request")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    print(json.dumps(asyncio.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
