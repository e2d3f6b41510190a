"""Wake-up latencies read from a `perf script` trace, and their summary per system."""

from typing import Any

from bench import vcpu_wake

# perf script -F comm,tid,cpu,time,event,trace: the client (oha, core 0) wakes a proxy on
# core 1, which wakes a second proxy on its own core, which wakes the upstream on core 0.
TRACE = """\
oha 900 [000] 100.000000: sched:sched_waking: comm=proxy-a pid=11 target_cpu=001
oha 900 [000] 100.000002: sched:sched_switch: prev_comm=oha prev_state=S ==> next_pid=0
proxy-a 11 [001] 100.000040: sched:sched_waking: comm=proxy-b pid=12 target_cpu=001
proxy-a 11 [001] 100.000041: sched:sched_stat_runtime: comm=proxy-a pid=11 runtime=15000 [ns]
proxy-b 12 [001] 100.000060: sched:sched_waking: comm=nginx pid=20 target_cpu=000
nginx 20 [000] 100.000360: sched:sched_stat_runtime: comm=nginx pid=20 runtime=9000 [ns]
kswapd 30 [000] 100.000400: sched:sched_waking: comm=kworker pid=31 target_cpu=000
kworker 31 [000] 100.000410: sched:sched_stat_runtime: comm=kworker pid=31 runtime=1000 [ns]
"""


def test_each_wake_is_timed_to_the_woken_threads_next_event_by_where_the_waker_ran() -> None:
    w = vcpu_wake.wake_latencies(TRACE, tids={11, 12, 20}, client_comms=("oha",))
    assert [round(x) for x in w.cross] == [40, 300]  # client → proxy-a, proxy-b → nginx
    assert [round(x) for x in w.same] == [20]  # proxy-a → proxy-b on core 1
    # Threads that are not the system's are not tracked.
    assert len(w.cross) + len(w.same) == 3


def _run(p50: float, p99: float) -> dict[str, Any]:
    # 98 % of a run's samples at p50, 2 % at p99.
    return {"requests": 100, "buckets": [[p50, p50 + 5, 98], [p99, p99 + 5, 2]]}


def test_a_system_is_summarized_against_direct_and_rendered() -> None:
    direct = [_run(50, 400) for _ in range(2)]
    pair = [_run(150, 1400) for _ in range(2)]
    wakes = [vcpu_wake.Wakes(cross=[30.0] * 390 + [600.0] * 10, same=[20.0] * 200)] * 2
    s = vcpu_wake.summarize(pair, wakes, direct)
    assert s["requests"] == 200
    assert s["cross_core_wakes_per_request"] == 4
    assert s["same_core_wakes_per_request"] == 2
    assert s["cross_core_wake_us"]["p50_us"] == 30
    assert s["cross_core_wake_us"]["p99_us"] == 600
    assert s["cross_core_wake_us"]["over_200_us"] == 20
    assert 95 <= s["added"]["p50_us"] <= 105
    assert 950 <= s["added"]["p99_us"] <= 1050
    d = vcpu_wake.summarize(direct, [vcpu_wake.Wakes()] * 2, None)
    assert "added" not in d
    assert d["cross_core_wakes_per_request"] == 0
    text = vcpu_wake.render(
        {
            "rate": 1000,
            "seconds": 5,
            "repeats": 2,
            "command": "x",
            "conditions": {c: {"direct": d, "meshcore-pair": s} for c in vcpu_wake.CONDITIONS},
        }
    )
    assert "| halting | direct |" in text
    assert "| polling | meshcore-pair |" in text
    assert "| 4.00 | 30 / 600 / 600 |" in text
