"""Load profiles and Locust's output, read without running anything: every shipped profile is valid, a bad
one is one line naming its key, and Locust's statistics are read as Locust computes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.load import LoadProfile, capacity_warning, load_profile
from harness.load._stats import HistoryTail, percentile_label, read_final_stats, response_time_percentile

SHIPPED = sorted((Path(__file__).parents[2] / "load_profiles").glob("*.toml"))
BASE = {"title": "t", "target": {"kind": "orders"}, "load": {"users": 2, "duration": 5}}


def profile(**changes: object) -> LoadProfile:
    return LoadProfile.model_validate({**BASE, **changes})


@pytest.mark.behaviour("load.profiles")
class TestProfiles:
    @pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
    def test_every_shipped_profile_is_valid(self, path: Path) -> None:
        assert load_profile(path).title

    def test_a_steady_load_is_one_stage_spawned_within_a_second(self) -> None:
        load = profile(load={"users": 8, "duration": 12, "rate_per_user": 2.5}).load
        [stage] = load.planned_stages()
        assert (stage.until, stage.users, stage.spawn_rate) == (12, 8, 8.0)
        assert load.offered_peak == 20.0

    @pytest.mark.parametrize(
        ("changes", "says"),
        [
            pytest.param(
                {"load": {"users": 2, "duration": 5, "stages": [{"until": 1, "users": 1, "spawn_rate": 1}]}},
                "users and spawn_rate, or stages",
                id="users-and-stages",
            ),
            pytest.param(
                {
                    "load": {
                        "stages": [
                            {"until": 5, "users": 1, "spawn_rate": 1},
                            {"until": 5, "users": 2, "spawn_rate": 1},
                        ]
                    }
                },
                "each until must be later",
                id="stages-not-increasing",
            ),
            pytest.param(
                {"target": {"kind": "http"}}, "exactly one of service, instance or url", id="http-no-target"
            ),
            pytest.param(
                {"target": {"kind": "orders", "path": "/x"}},
                "path is for kind = 'http' only",
                id="orders-with-a-path",
            ),
            pytest.param(
                {"thresholds": {"achieved_ratio": 0.9}}, "needs load.rate_per_user", id="ratio-no-rate"
            ),
            pytest.param(
                {"target": {"kind": "http", "url": "http://127.0.0.1:1"}, "checks": {"shares": {}}},
                "need a target in the stack",
                id="checks-on-a-url",
            ),
        ],
    )
    def test_contradictions_are_refused(self, changes: dict[str, object], says: str) -> None:
        with pytest.raises(ValueError, match=says):
            profile(**changes)

    def test_a_breaker_check_needs_time_after_the_fault_to_judge_recovery(self) -> None:
        window = {"name": "w", "start": 1, "end": 4, "fault": {"kind": "latency", "instance": "users-2"}}
        with pytest.raises(ValueError, match=r"window w ends at 4 s; .* must last at least 11 s"):
            profile(faults={"windows": [window]}, checks={"breaker": {}}, load={"users": 2, "duration": 10})

    def test_a_bad_file_is_one_line_naming_it_and_the_key(self, tmp_path: Path) -> None:
        path = tmp_path / "p.toml"
        path.write_text('title = "t"\n[load]\nusers = 2\nduration = 5\nramp = 1\n')
        with pytest.raises(ConfigError, match=r"p\.toml: load\.ramp: unknown key$"):
            load_profile(path)
        with pytest.raises(ConfigError, match="no such load profile"):
            load_profile(tmp_path / "missing.toml")

    def test_asking_more_than_the_measured_capacity_is_warned_about(self) -> None:
        load = profile(load={"users": 10_000, "duration": 5, "rate_per_user": 10}).load
        warning = capacity_warning(load, workers=1)
        assert warning is not None
        assert "100000 req/s" in warning
        assert capacity_warning(profile().load, workers=1) is None  # a closed loop offers no known rate


@pytest.mark.behaviour("load.thresholds")
class TestLocustOutput:
    def test_percentiles_are_locusts_own(self) -> None:
        """Locust's algorithm over its rounded histogram: of 10 requests (1x 100, 8x 10, 1x 5 ms), the median
        is 10 ms and the 95th percentile 100 ms."""
        histogram = {100: 1, 10: 8, 5: 1}
        assert response_time_percentile(histogram, 10, 0.5) == 10.0
        assert response_time_percentile(histogram, 10, 0.95) == 100.0
        assert response_time_percentile(histogram, 10, 0.05) == 5.0
        assert response_time_percentile({}, 0, 0.5) is None
        assert [percentile_label(q) for q in (0.5, 0.95, 0.999, 1.0)] == ["50%", "95%", "99.9%", "100%"]

    def test_the_final_statistics_merge_every_entry(self, tmp_path: Path) -> None:
        entry = {
            "method": "GET",
            "start_time": 100.0,
            "last_request_timestamp": 110.0,
            "num_none_requests": 0,
            "total_content_length": 0,
            "num_reqs_per_sec": {},
            "num_fail_per_sec": {},
        }
        raw = [
            {
                **entry,
                "name": "a",
                "num_requests": 300,
                "num_failures": 3,
                "total_response_time": 3000.0,
                "max_response_time": 40.0,
                "min_response_time": 2.0,
                "response_times": {"10": 300},
            },
            {
                **entry,
                "name": "b",
                "num_requests": 100,
                "num_failures": 0,
                "total_response_time": 5000.0,
                "max_response_time": 90.0,
                "min_response_time": 30.0,
                "response_times": {"50": 100},
            },
        ]
        path = tmp_path / "locust.json"
        path.write_text(json.dumps(raw))
        total, endpoints = read_final_stats(path)
        assert [e.name for e in endpoints] == ["a", "b"]
        assert (total.requests, total.failures, total.rate) == (400, 3, 40.0)
        assert total.average_ms == 20.0
        assert (total.percentile(0.5), total.percentile(0.8)) == (10.0, 50.0)

    def test_the_history_is_read_as_it_grows_complete_lines_only(self, tmp_path: Path) -> None:
        path = tmp_path / "h.csv"
        header = (
            "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,"
            "Total Request Count,Total Failure Count\n"
        )
        tail = HistoryTail(path)
        assert tail.read() == []
        path.write_text(header + "10,2,GET,/x,1,0,5,9,9,7,0\n10,2,,Aggregated,1,0,5,9,9,7,0\n11,2,,Aggr")
        [row] = tail.read()
        assert (row.timestamp, row.users, row.requests, row.p95_ms) == (10, 2, 7, 9.0)
        with path.open("a") as more:
            more.write("egated,1,0,N/A,N/A,N/A,12,1\n")
        [row] = tail.read()
        assert (row.timestamp, row.requests, row.failures, row.p50_ms) == (11, 12, 1, None)
