"""Ids sort in the order they were made: strictly within a process, even in one millisecond
(found by an outside audit: a refund's timeline steps written in one transaction, and the
events of one capture, came back in a random order when they shared a millisecond)."""

from __future__ import annotations

import threading

from knowpay.kit import ids


def test_ids_made_in_one_millisecond_sort_in_the_order_they_were_made() -> None:
    made = [ids.new_id("rtl") for _ in range(2000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_a_clock_that_steps_back_does_not_break_the_order() -> None:
    clock = ids._Monotonic()
    first = clock.next(1_000)
    second = clock.next(999)  # the wall clock went back a millisecond
    third = clock.next(1_000)
    assert first < second < third


def test_the_random_part_carries_into_the_next_millisecond_when_it_runs_out() -> None:
    clock = ids._Monotonic()
    clock.next(5)
    clock._random = (1 << 80) - 1  # as if 2^80 ids had been made in that millisecond
    millis, random_part = clock.next(5)
    assert millis == 6
    assert random_part < 1 << 80


def test_ids_made_by_many_threads_at_once_are_distinct_and_each_threads_are_in_order() -> None:
    made: dict[int, list[str]] = {}

    def make(n: int) -> None:
        made[n] = [ids.new_id("evt") for _ in range(500)]

    threads = [threading.Thread(target=make, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for batch in made.values() for i in batch]
    assert len(set(every)) == len(every)
    assert all(batch == sorted(batch) for batch in made.values())
