"""Balancers and choose(): fair shares, weights, least outstanding, skipping unavailable instances."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import NoAvailableInstance
from harness.resilience import (
    BALANCER_NAMES,
    Balancer,
    Candidate,
    LeastOutstanding,
    RandomBalancer,
    RoundRobin,
    WeightedRoundRobin,
    choose,
    make_balancer,
)


def candidates(*ids: str) -> list[Candidate]:
    return [Candidate(i) for i in ids]


def picks(balancer: Balancer, pool: list[Candidate], n: int) -> list[str]:
    return [balancer.pick(pool).id for _ in range(n)]


unique_ids = st.lists(st.text("abcdefgh", min_size=1, max_size=4), min_size=1, max_size=8, unique=True)


@pytest.mark.behaviour("balancer.round_robin_shares")
class TestRoundRobin:
    @settings(max_examples=200, deadline=None)
    @given(ids=unique_ids, n=st.integers(0, 100))
    def test_shares_differ_by_at_most_one(self, ids: list[str], n: int) -> None:
        """Over any number of picks from a fixed set, max share - min share <= 1."""
        counts = Counter(picks(RoundRobin(), candidates(*ids), n))
        shares = [counts[i] for i in ids]
        assert max(shares) - min(shares) <= 1

    def test_order_is_by_id_whatever_the_input_order(self) -> None:
        """The rotation follows ids, so callers may pass candidates in any order."""
        balancer = RoundRobin()
        assert picks(balancer, candidates("c", "a", "b"), 4) == ["a", "b", "c", "a"]
        assert picks(balancer, candidates("b", "c", "a"), 2) == ["b", "c"]

    def test_continues_after_the_last_pick_when_the_set_changes(self) -> None:
        """When an instance leaves, the rotation carries on from where it was."""
        balancer = RoundRobin()
        assert picks(balancer, candidates("a", "b", "c", "d"), 2) == ["a", "b"]
        assert picks(balancer, candidates("a", "c", "d"), 3) == ["c", "d", "a"]
        assert picks(balancer, candidates("a", "b", "e"), 3) == ["b", "e", "a"]

    def test_ignores_weights(self) -> None:
        """Round robin treats every candidate the same."""
        pool = [Candidate("a", 5), Candidate("b", 1)]
        assert Counter(picks(RoundRobin(), pool, 10)) == {"a": 5, "b": 5}


weighted_pools = st.lists(st.integers(1, 10), min_size=1, max_size=6).map(
    lambda weights: [Candidate(f"c{i}", w) for i, w in enumerate(weights)]
)


@pytest.mark.behaviour("balancer.weights")
class TestWeightedRoundRobin:
    @settings(max_examples=200, deadline=None)
    @given(pool=weighted_pools, k=st.integers(1, 4))
    def test_exact_shares_over_whole_rounds(self, pool: list[Candidate], k: int) -> None:
        """Over total_weight * k picks each candidate is picked exactly weight * k times."""
        total = sum(c.weight for c in pool)
        counts = Counter(picks(WeightedRoundRobin(), pool, total * k))
        assert {c.id: counts[c.id] for c in pool} == {c.id: c.weight * k for c in pool}

    @settings(max_examples=200, deadline=None)
    @given(pool=weighted_pools)
    def test_is_smooth(self, pool: list[Candidate]) -> None:
        """In the first n picks no candidate gets more than ceil(n * weight / total_weight)."""
        total = sum(c.weight for c in pool)
        counts: Counter[str] = Counter()
        for n, chosen in enumerate(picks(WeightedRoundRobin(), pool, 2 * total), start=1):
            counts[chosen] += 1
            for c in pool:
                assert counts[c.id] <= math.ceil(n * c.weight / total)

    def test_nginx_sequence(self) -> None:
        """Weights 5, 1, 1 give nginx's documented smooth sequence a a b a c a a."""
        pool = [Candidate("a", 5), Candidate("b", 1), Candidate("c", 1)]
        assert picks(WeightedRoundRobin(), pool, 7) == ["a", "a", "b", "a", "c", "a", "a"]

    def test_adapts_when_the_set_changes(self) -> None:
        """State of departed candidates is forgotten; shares follow the new set."""
        balancer = WeightedRoundRobin()
        picks(balancer, [Candidate("a", 3), Candidate("b", 1), Candidate("gone", 2)], 5)
        pool = [Candidate("a", 3), Candidate("b", 1)]
        counts = Counter(picks(balancer, pool, 400))
        assert abs(counts["a"] - 300) <= 2
        assert "gone" not in balancer._current


@pytest.mark.behaviour("balancer.random")
class TestRandom:
    def test_covers_every_candidate(self) -> None:
        """With a seeded rng, a few hundred picks reach every candidate, roughly evenly."""
        pool = candidates("a", "b", "c", "d")
        counts = Counter(picks(RandomBalancer(random.Random(7)), pool, 400))
        assert set(counts) == {"a", "b", "c", "d"}
        assert min(counts.values()) > 60

    def test_is_reproducible_with_a_seed(self) -> None:
        """The same seed gives the same sequence."""
        pool = candidates("a", "b", "c")
        first = picks(RandomBalancer(random.Random(3)), pool, 20)
        assert picks(RandomBalancer(random.Random(3)), pool, 20) == first


@pytest.mark.behaviour("balancer.least_outstanding")
class TestLeastOutstanding:
    def test_prefers_the_less_loaded(self) -> None:
        """With two candidates of different load it always picks the one with fewer calls in flight."""
        balancer = LeastOutstanding(random.Random(1))
        for _ in range(3):
            balancer.started("a")
        balancer.started("b")
        assert set(picks(balancer, candidates("a", "b"), 200)) == {"b"}
        balancer.finished("a")
        balancer.finished("a")
        balancer.finished("a")
        assert set(picks(balancer, candidates("a", "b"), 200)) == {"a"}

    @settings(max_examples=200, deadline=None)
    @given(load_a=st.integers(0, 5), load_b=st.integers(0, 5), seed=st.integers(0, 2**32))
    def test_never_picks_the_busier_of_two(self, load_a: int, load_b: int, seed: int) -> None:
        """Between exactly two candidates with different loads, the busier one is never picked."""
        balancer = LeastOutstanding(random.Random(seed))
        for cid, load in (("a", load_a), ("b", load_b)):
            for _ in range(load):
                balancer.started(cid)
        chosen = balancer.pick(candidates("a", "b")).id
        if load_a != load_b:
            assert chosen == ("a" if load_a < load_b else "b")

    def test_ties_go_to_the_first_sampled(self) -> None:
        """Equal loads: the first of the two sampled candidates wins, so picks still spread."""
        pool = candidates("a", "b", "c")
        balancer = LeastOutstanding(random.Random(5))
        expected = [random.Random(5).sample(pool, 2)[0].id]
        assert picks(balancer, pool, 1) == expected
        assert set(picks(balancer, pool, 300)) == {"a", "b", "c"}

    def test_a_single_candidate_is_picked(self) -> None:
        """With one candidate there is nothing to sample."""
        balancer = LeastOutstanding(random.Random(0))
        balancer.started("only")
        assert balancer.pick(candidates("only")).id == "only"

    def test_counts_never_go_negative(self) -> None:
        """An unmatched finished() is ignored, and a finished id's count is dropped."""
        balancer = LeastOutstanding()
        balancer.finished("a")
        assert balancer.outstanding("a") == 0
        balancer.started("a")
        balancer.finished("a")
        assert balancer._outstanding == {}


class TestPickContract:
    @pytest.mark.parametrize("name", BALANCER_NAMES)
    def test_empty_candidates_are_a_value_error(self, name: str) -> None:
        """Every balancer rejects an empty candidate list."""
        with pytest.raises(ValueError, match="empty"):
            make_balancer(name).pick([])

    @pytest.mark.parametrize("name", BALANCER_NAMES)
    def test_duplicate_ids_are_a_value_error(self, name: str) -> None:
        """Every balancer rejects a candidate list that repeats an id."""
        with pytest.raises(ValueError, match="unique"):
            make_balancer(name).pick(candidates("a", "a"))

    def test_weight_must_be_positive(self) -> None:
        """A candidate weight below 1 is a programming mistake."""
        with pytest.raises(ValueError, match="weight"):
            Candidate("a", 0)


class TestMakeBalancer:
    def test_names(self) -> None:
        """The four balancers, under their documented names."""
        assert BALANCER_NAMES == ("round_robin", "random", "weighted_round_robin", "least_outstanding")

    @pytest.mark.parametrize(
        ("name", "kind"),
        [
            pytest.param("round_robin", RoundRobin, id="round-robin"),
            pytest.param("random", RandomBalancer, id="random"),
            pytest.param("weighted_round_robin", WeightedRoundRobin, id="weighted"),
            pytest.param("least_outstanding", LeastOutstanding, id="least-outstanding"),
        ],
    )
    def test_builds_each_by_name(self, name: str, kind: type[Balancer]) -> None:
        """make_balancer returns a fresh balancer of the named kind."""
        balancer = make_balancer(name, rng=random.Random(0))
        assert type(balancer) is kind
        assert balancer.name == name
        assert make_balancer(name) is not balancer

    def test_rng_is_used(self) -> None:
        """The rng given to make_balancer drives the random balancers."""
        pool = candidates("a", "b", "c", "d")
        first = picks(make_balancer("random", rng=random.Random(9)), pool, 10)
        assert picks(make_balancer("random", rng=random.Random(9)), pool, 10) == first

    def test_unknown_name_lists_the_valid_ones(self) -> None:
        """A typo gets a ValueError that lists every valid name."""
        with pytest.raises(ValueError, match="unknown balancer 'round-robin'") as caught:
            make_balancer("round-robin")
        for name in BALANCER_NAMES:
            assert name in str(caught.value)


class TestChoose:
    @pytest.mark.behaviour("balancer.skips_open_breakers")
    def test_skips_unavailable(self) -> None:
        """Candidates whose breaker says no are never picked."""
        pool, balancer = candidates("a", "b", "c"), RoundRobin()
        chosen = {choose(balancer, pool, lambda i: i != "b", service="users").id for _ in range(10)}
        assert chosen == {"a", "c"}

    @pytest.mark.behaviour("balancer.skips_open_breakers")
    def test_prefers_candidates_not_tried_yet(self) -> None:
        """Ids in `exclude` are avoided while another available candidate exists."""
        pool, balancer = candidates("a", "b", "c"), RoundRobin()
        for _ in range(10):
            chosen = choose(balancer, pool, lambda i: i != "c", service="users", exclude={"a"})
            assert chosen.id == "b"

    @pytest.mark.behaviour("balancer.skips_open_breakers")
    def test_falls_back_to_excluded(self) -> None:
        """When every available candidate was tried already, an excluded one is picked rather than failing."""
        pool = candidates("a", "b")
        chosen = choose(RoundRobin(), pool, lambda i: i == "a", service="users", exclude=["a"])
        assert chosen.id == "a"

    @pytest.mark.behaviour("balancer.none_available_fails_fast")
    def test_raises_when_none_is_available(self) -> None:
        """All breakers open: NoAvailableInstance names the service and known vs available counts."""
        pool = candidates("users-1", "users-2", "users-3")
        with pytest.raises(NoAvailableInstance) as caught:
            choose(RoundRobin(), pool, lambda i: False, service="users")
        message = str(caught.value)
        assert caught.value.service == "users"
        assert "'users'" in message
        assert "3 known, 0 available" in message
        assert "users-2" in message

    @pytest.mark.behaviour("balancer.none_available_fails_fast")
    def test_raises_when_none_is_known(self) -> None:
        """An empty instance list fails fast with its own message."""
        with pytest.raises(NoAvailableInstance, match="no instance of service 'users' is known"):
            choose(RoundRobin(), [], lambda i: True, service="users")

    @pytest.mark.behaviour("balancer.none_available_fails_fast")
    def test_long_lists_are_shortened_in_the_message(self) -> None:
        """The message names a few instances, not hundreds."""
        pool = [Candidate(f"i{n}") for n in range(50)]
        with pytest.raises(NoAvailableInstance) as caught:
            choose(RoundRobin(), pool, lambda i: False, service="s")
        assert "i9, ..." in str(caught.value)
        assert "i10" not in str(caught.value)

    def test_does_not_report_start_or_finish(self) -> None:
        """choose() only picks; the caller tells the balancer when the call starts and ends."""
        balancer = LeastOutstanding(random.Random(0))
        choose(balancer, candidates("a", "b"), lambda i: True, service="s")
        assert balancer._outstanding == {}
