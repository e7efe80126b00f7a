"""The router's decisions and health state machine, on a fake clock (no I/O)."""

from __future__ import annotations

import pytest

from parley.platform.fleet.router import (
    COOLDOWN,
    DOWN,
    HEALTHY,
    FleetRouter,
    HealthPolicy,
    ServerConfig,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(*names: str, max_streams: int = 4, weights: dict[str, int] | None = None, **policy):  # noqa: ANN003, ANN201
    clock = Clock()
    changes: list[tuple[str, str, str]] = []
    router = FleetRouter(
        [
            ServerConfig(
                id=n,
                name=n,
                base_url=f"http://{n}/v1",
                max_streams=max_streams,
                weight=(weights or {}).get(n, 1),
            )
            for n in names
        ],
        policy=HealthPolicy(
            **{"failure_threshold": 3, "cooldown_s": 10, "down_after": 6, **policy}
        ),
        clock=clock,
        on_health_change=lambda s, prev: changes.append((s.name, prev, s.health)),
    )
    return router, clock, changes


def test_a_conversation_sticks_to_its_server_and_new_ones_take_the_least_loaded() -> None:
    router, _, _ = make("a", "b", "c")
    first = router.choose("call-1")
    assert (first.server.name, first.reason) == ("a", "new")
    router.begin(first.server)
    second = router.choose("call-2")
    assert (second.server.name, second.reason) == ("b", "new")  # a has a stream in flight
    router.begin(second.server)
    again = router.choose("call-1")
    assert (again.server.name, again.reason) == ("a", "affinity")


def test_load_counts_in_flight_streams_per_unit_of_weight() -> None:
    router, _, _ = make("big", "small", weights={"big": 4, "small": 1})
    for i in range(4):
        router.begin(router.choose(f"c{i}").server)
    loads = {s.name: s.inflight for s in router.servers}
    assert loads == {"big": 3, "small": 1}  # 3/4 < 1/1 until big holds 4


def test_a_server_at_its_limit_spills_its_conversations_over() -> None:
    router, _, _ = make("a", "b", max_streams=1)
    a = router.choose("call-1").server
    router.begin(a)
    spill = router.choose("call-1")  # its server is full (a long stream still running)
    assert (spill.server.name, spill.reason) == ("b", "spill_over")
    router.begin(spill.server)
    full = router.choose("call-3")
    assert full.reason == "saturated" and full.server is not None  # everyone full: least loaded


def test_failures_cool_a_server_down_and_a_half_open_success_brings_it_back() -> None:
    router, clock, changes = make("a", "b")
    a = router.state("a")
    for _ in range(2):
        router.record_failure(a, "boom")
    assert a.health == HEALTHY  # below the threshold
    router.record_failure(a, "boom")
    assert a.health == COOLDOWN and changes == [("a", HEALTHY, COOLDOWN)]
    assert router.choose("x").server.name == "b"
    sticky = router.choose("x")
    router.state("b").health = COOLDOWN  # b too: a cooling-down server is the last resort
    router.state("b").cooldown_until = clock.now + 100
    assert router.choose("y").reason == "last_resort"
    router.state("b").health = HEALTHY
    assert sticky.reason == "affinity"
    clock.now += 10.5  # cooldown over: half-open
    choice = router.choose("z", exclude=["b"])
    assert choice.server is a
    router.begin(a)
    router.end(a, ok=False, error="still broken")  # the half-open try fails: longer cooldown
    assert a.health == COOLDOWN and a.cooldown_until == pytest.approx(clock.now + 20)
    clock.now += 20.5
    router.begin(a)
    router.end(a, ok=True, ttft_ms=120.0, itl_ms=[15.0, 16.0])
    assert a.health == HEALTHY and a.consecutive_failures == 0
    assert changes[-1] == ("a", COOLDOWN, HEALTHY)
    assert a.snapshot()["ttft_p50_ms"] == 120.0


def test_a_server_that_keeps_failing_goes_down_until_a_success() -> None:
    router, clock, _ = make("a", "b")
    a = router.state("a")
    for _ in range(6):
        router.record_failure(a, "refused")
    assert a.health == DOWN
    clock.now += 10_000
    assert all(router.choose(f"c{i}").server.name == "b" for i in range(3))
    router.state("b").health = DOWN
    assert router.choose("c9").server is None  # nothing usable, nothing cooling down
    router.record_success(a)  # an active health check passed
    assert router.choose("c10").server is a


def test_cancelled_requests_say_nothing_about_health_and_admin_edits_keep_state() -> None:
    router, _, _ = make("a")
    a = router.state("a")
    router.begin(a)
    router.end(a, ok=None)
    assert (a.inflight, a.consecutive_failures, a.health) == (0, 0, HEALTHY)
    router.record_failure(a, "x")
    router.update([ServerConfig(id="a", name="a", base_url="http://a2/v1", enabled=False)])
    assert router.state("a").consecutive_failures == 1
    assert router.choose("c").server is None  # disabled in the admin


def test_a_slow_server_is_avoided_but_probed_now_and_then() -> None:
    router, clock, _ = make("a", "b", "c", slow_probe_s=5.0)
    for name, ttft in (("a", 150.0), ("b", 160.0), ("c", 800.0)):
        state = router.state(name)
        state.ttft_ms.extend([ttft] * 5)
    router._affinity["on-c"] = "c"
    moved = router.choose("on-c")
    assert moved.reason == "probe" and moved.server.name == "c"  # the first probe is due now
    moved = router.choose("on-c")
    assert (moved.server.name, moved.reason) == ("a", "slow")  # then it moves off c
    assert {router.choose(f"n{i}").server.name for i in range(5)} <= {"a", "b"}
    clock.now += 5.1
    assert router.choose("n9").reason == "probe"
    router.state("c").ttft_ms.extend([150.0] * 100)  # fast again: an ordinary server
    assert router._slow(router.servers) == []
