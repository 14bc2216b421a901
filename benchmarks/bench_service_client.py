"""Benchmark: ServiceClient overhead over a bare httpx.AsyncClient, and the cost of each resilience decision.

Both clients call the same echo instance, which runs in its own process; rounds alternate between the two
so machine noise hits both alike, and the figure that matters is the ratio measured in this one run.

    python -m benchmarks.bench_service_client [--calls 2000] [--rounds 5] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import timeit
from collections.abc import Awaitable, Callable
from functools import partial

import httpx

from harness.discovery import Instance, ServiceClient, ServiceClientConfig, StaticInstances
from harness.resilience import (
    BALANCER_NAMES,
    BreakerConfig,
    Candidate,
    CircuitBreaker,
    RetryBudget,
    choose,
    make_balancer,
)
from harness.stack import ProcessSpec, ServiceProcess

Call = Callable[[], Awaitable[httpx.Response]]


async def run_round(call: Call, calls: int, concurrency: int) -> tuple[float, list[float]]:
    """Send ``calls`` requests with ``concurrency`` workers; returns (requests/s, latencies in seconds)."""
    latencies: list[float] = []
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            began = time.perf_counter()
            response = await call()
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise RuntimeError(f"unexpected status {response.status_code}")

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (time.perf_counter() - began), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def compare(url: str, port: int, calls: int, rounds: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=5.0, trust_env=False) as bare:
        client = ServiceClient(
            "echo",
            StaticInstances([Instance("echo-1", "echo", "127.0.0.1", port)]),
            config=ServiceClientConfig(max_concurrent=concurrency),
        )

        def bare_call() -> Awaitable[httpx.Response]:
            return bare.get(f"{url}/echo", params={"msg": "x"})

        def client_call() -> Awaitable[httpx.Response]:
            return client.get("/echo", params={"msg": "x"})

        await run_round(bare_call, 200, concurrency)  # warm both connection pools
        await run_round(client_call, 200, concurrency)
        results: dict[str, list[tuple[float, list[float]]]] = {"bare httpx": [], "ServiceClient": []}
        for _ in range(rounds):
            results["bare httpx"].append(await run_round(bare_call, calls, concurrency))
            results["ServiceClient"].append(await run_round(client_call, calls, concurrency))
        await client.aclose()

    print(f"\nconcurrency {concurrency}, {rounds} alternating rounds of {calls} calls each")
    print(f"  {'client':<14} {'req/s (median)':>15} {'p50 ms':>8} {'p99 ms':>8}")
    medians = {}
    for name, runs in results.items():
        rates = [rate for rate, _ in runs]
        latencies = [lat for _, lats in runs for lat in lats]
        medians[name] = statistics.median(rates)
        print(
            f"  {name:<14} {medians[name]:>15.0f} {percentile(latencies, 0.5) * 1e3:>8.2f} "
            f"{percentile(latencies, 0.99) * 1e3:>8.2f}"
        )
    ratio = medians["ServiceClient"] / medians["bare httpx"]
    print(
        f"  ServiceClient throughput = {ratio:.3f} x bare (overhead {(1 - ratio) * 100:.1f}%; target <= 10%)"
    )


def decision_costs() -> None:
    """Microseconds per decision, with no I/O: what the client adds to every call before the network."""
    print("\ncost per decision (no I/O)")
    number = 100_000
    breaker = CircuitBreaker("b", BreakerConfig())

    def breaker_round_trip() -> None:
        breaker.record_success(breaker.acquire(), 0.001)

    candidates = [Candidate(f"i-{n}", weight=n) for n in range(1, 4)]
    budget = RetryBudget(0.2)
    figures = {"breaker acquire + record": timeit.timeit(breaker_round_trip, number=number) / number}
    for name in BALANCER_NAMES:
        balancer = make_balancer(name, rng=random.Random(1))
        figures[f"{name} pick (3 instances)"] = (
            timeit.timeit(partial(balancer.pick, candidates), number=number) / number
        )
    round_robin = make_balancer("round_robin")
    figures["choose() over 3 breakers"] = (
        timeit.timeit(
            lambda: choose(round_robin, candidates, lambda _id: breaker.available(), service="s"),
            number=number,
        )
        / number
    )
    figures["retry budget record_call"] = timeit.timeit(budget.record_call, number=number) / number
    for name, seconds in figures.items():
        print(f"  {name:<34} {seconds * 1e6:7.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    with ServiceProcess(ProcessSpec("bench-echo", "echo")) as echo:
        assert echo.port is not None
        print(f"echo instance {echo.url} (pid {echo.pid}); this process is the load generator")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            asyncio.run(compare(echo.url, echo.port, args.calls, args.rounds, concurrency))
    decision_costs()


if __name__ == "__main__":
    main()
