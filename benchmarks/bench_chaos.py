"""Benchmark: what a chaos run costs beyond what its experiment asks for.

Starts a stack (timed), then runs an experiment on it (experiment 1 by default) and compares the method's
wall time with the waits the file itself configures (pauses, and activities that wait for traffic or a
condition): the difference is the harness's own overhead (probes reading the timeline, fault calls,
progress). Also times the steady-state checks and the cleanup.

    python -m benchmarks.bench_chaos [--experiment chaos_experiments/01-...json] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.chaos import run_chaos
from harness.stack import Stack, Topology

WAITING = frozenset({"wait_for_traffic", "wait_until", "play_fault_schedule"})


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def measure(journal: dict[str, Any]) -> dict[str, float]:
    runs = journal["run"]
    method = _seconds(runs[0]["start"], runs[-1]["end"])
    pauses = sum(float(r["activity"].get("pauses", {}).get("after", 0)) for r in runs)
    waits = sum(r["duration"] for r in runs if r["activity"]["provider"].get("func") in WAITING)
    steady = journal["steady_states"]
    hypothesis = sum(
        p["duration"] for phase in ("before", "after") for p in (steady.get(phase) or {}).get("probes", [])
    )
    return {
        "method": method,
        "configured": pauses + waits,
        "overhead": method - pauses - waits,
        "hypothesis": hypothesis,
        "total": journal["duration"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiment", type=Path, default=Path("chaos_experiments/01-latency-on-one-users-instance.json")
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as folder:
        began = time.monotonic()
        with Stack(Topology(), Path(folder) / "stack") as stack:
            started = time.monotonic() - began
            print(f"stack start-up: {started:.2f}s for {len(stack.processes)} processes")
            figures = []
            for round_ in range(args.rounds):
                outcome = run_chaos(
                    args.experiment, report_dir=Path(folder) / f"report-{round_}", stack=stack
                )
                figures.append(measure(json.loads(outcome.journal_path.read_text())))
                f = figures[-1]
                print(
                    f"round {round_ + 1}: exit {outcome.exit_code}; method {f['method']:.2f}s, "
                    f"configured waits "
                    f"{f['configured']:.2f}s, overhead {f['overhead']:.2f}s; hypothesis probes "
                    f"{f['hypothesis']:.2f}s; whole run {f['total']:.2f}s"
                )
    overhead = [f["overhead"] for f in figures]
    print(
        f"\nharness overhead in the method: median {statistics.median(overhead):.2f}s "
        f"({statistics.median(f['overhead'] / f['method'] for f in figures):.1%} of its wall time)"
    )


if __name__ == "__main__":
    main()
