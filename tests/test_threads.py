"""The host's thread pool for the CPU kernels (descentlab.kernels.threads)."""

from __future__ import annotations

import threading
import time

import pytest

from descentlab.kernels import threads


@pytest.mark.parametrize("n", [0, 1, 5, 8, 9, 1000])
@pytest.mark.parametrize("k", [1, 2, 3, 16])
def test_pieces_tile_the_range(n: int, k: int) -> None:
    ps = threads.pieces(n, k)
    assert [a for a, _ in ps[1:]] == [b for _, b in ps[:-1]]  # contiguous
    assert (ps[0][0], ps[-1][1]) == (0, n) if n else ps == []
    assert len(ps) <= max(1, threads.PIECES_PER_THREAD * k) and all(b > a for a, b in ps)


def test_for_pieces_runs_every_piece_once_on_several_threads() -> None:
    seen: list[tuple[int, int]] = []
    names: set[str] = set()

    def fn(a: int, b: int) -> int:
        time.sleep(0.01)  # lets the other thread claim pieces
        seen.append((a, b))
        names.add(threading.current_thread().name)
        return b - a

    assert threads.for_pieces(100, fn, threads=2) == 100
    assert sorted(seen) == threads.pieces(100, 2)
    assert len(names) == 2 and threading.current_thread().name in names
    seen.clear()
    assert threads.for_pieces(100, fn, threads=1) == 100 and len(seen) == len(threads.pieces(100, 1))


def test_an_error_in_a_piece_is_raised_in_the_caller() -> None:
    def fn(a: int, b: int) -> int:
        if a > 0:
            raise ZeroDivisionError(f"piece {a}")
        time.sleep(0.05)
        return 1

    with pytest.raises(ZeroDivisionError, match="piece"):
        threads.for_pieces(10, fn, threads=2)


def test_thread_count_is_per_calling_thread() -> None:
    with threads.using_threads(1):
        assert threads.get_threads() == 1
        got: list[int] = []
        t = threading.Thread(target=lambda: got.append(threads.get_threads()))
        t.start()
        t.join()
        assert got[0] != 1 or threads.max_threads() == 1
    with pytest.raises(ValueError, match="threads"):
        threads.set_threads(threads.max_threads() + 1)


def test_on_threads_runs_one_call_per_thread_and_sums() -> None:
    names: list[str] = []
    both = threading.Barrier(2, timeout=30)

    def fn() -> int:
        both.wait()  # each call waits for the other: both run at once
        names.append(threading.current_thread().name)
        return 3

    assert threads.on_threads(2, fn) == 6 and len(set(names)) == 2
    assert threads.on_threads(1, lambda: 3) == 3

    def bad() -> int:
        if threading.current_thread() is not threading.main_thread():
            raise KeyError("pool thread")
        time.sleep(0.02)
        return 1

    with pytest.raises(KeyError, match="pool thread"):
        threads.on_threads(2, bad)


def test_a_forked_child_gets_its_own_pool() -> None:
    import multiprocessing

    threads.on_threads(2, lambda: time.sleep(0.05) or 1)  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        names = pool.apply(_thread_names_in_child)
    assert len(set(names)) == 2  # the child ran on two threads, not one with a dead pool's futures


def _thread_names_in_child() -> list[str]:
    names: list[str] = []
    both = threading.Barrier(2, timeout=30)  # broken (an error) if the pool's thread never runs

    def fn() -> int:
        both.wait()
        names.append(threading.current_thread().name)
        return 1

    assert threads.on_threads(2, fn) == 2
    return names
