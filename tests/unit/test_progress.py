import threading

from lfs_s3_agent.progress import ProgressReporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_bytes_at_once_then_coalesced_and_last_at_size() -> None:
    events: list[tuple[int, int]] = []
    clock = Clock()
    p = ProgressReporter(100, lambda a, b: events.append((a, b)), interval=0.5, clock=clock)
    p.add(1)
    assert events == [(1, 1)]  # first bytes reported immediately (git-lfs waits for them)
    for _ in range(10):
        p.add(5)  # same instant: coalesced
    assert events == [(1, 1)]
    clock.now += 0.5
    p.add(5)
    assert events[-1] == (56, 55)
    p.add(1000)  # never past the size
    assert events[-1] == (100, 44)
    p.finish()
    assert events[-1] == (100, 44) and len(events) == 3  # nothing new to say


def test_finish_reports_a_skipped_object_whole() -> None:
    events: list[tuple[int, int]] = []
    ProgressReporter(42, lambda a, b: events.append((a, b))).finish()
    assert events == [(42, 42)]


def test_zero_size_emits_nothing() -> None:
    events: list[tuple[int, int]] = []
    p = ProgressReporter(0, lambda a, b: events.append((a, b)))
    p.add(0)
    p.finish()
    assert events == []


def test_threads_produce_monotonic_totals_that_add_up() -> None:
    events: list[tuple[int, int]] = []
    size = 8 * 1000
    p = ProgressReporter(size, lambda a, b: events.append((a, b)), interval=0.0)
    threads = [threading.Thread(target=lambda: [p.add(1) for _ in range(1000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p.finish()
    so_far = [a for a, _ in events]
    assert so_far == sorted(so_far) and len(set(so_far)) == len(so_far)
    assert so_far[-1] == size
    assert sum(b for _, b in events) == size


def test_a_taken_over_object_is_neither_sent_back_nor_counted_twice() -> None:
    """ProgressGuard seeded with what the thin relay told git-lfs (``--progress-sent``, issue 15)."""
    import io
    import json

    from lfs_s3_agent.cli import _progress_sent
    from lfs_s3_agent.relay import ProgressGuard

    sent = _progress_sent(["a" * 64 + "=2048", "no-count=", "=12", "b=x1", "c=-1", "d=\u00b2", "e=" + "9" * 5000])
    assert sent == {"a" * 64: 2048}  # malformed values (only the thin relay writes them) are skipped
    out = io.BytesIO()
    guard = ProgressGuard(out, reported=sent)
    for so_far in (1024, 2048, 3072, 4096):  # the object moved again from byte 0
        guard.write({"event": "progress", "oid": "a" * 64, "bytesSoFar": so_far, "bytesSinceLast": 1024})
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["bytesSoFar"], e["bytesSinceLast"]) for e in events] == [(3072, 1024), (4096, 1024)]
    assert guard.in_flight() == {"a" * 64: 4096}
    guard.write({"event": "complete", "oid": "a" * 64, "path": "/tmp/x"})
    assert guard.in_flight() == {}
