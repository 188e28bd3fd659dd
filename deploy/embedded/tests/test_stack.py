"""The dev stack's supervision (issue 16 #21: one service exiting stopped the whole ``make run``)."""

import sys
import time

import pytest

from ecrm_embedded.stack import RESTART_LIMIT, Stack, StackSettings


def _stack(tmp_path) -> Stack:
    stack = Stack(StackSettings(ecrm_data_dir=tmp_path))
    (tmp_path / "logs").mkdir(parents=True)
    return stack


def _exits(code: int, after_s: float = 0.0) -> list[str]:
    return [sys.executable, "-c", f"import sys, time; print('working'); time.sleep({after_s}); sys.exit({code})"]


def _wait_exit(stack: Stack) -> None:
    for child in stack.children:
        child.process.wait(10)


def test_a_service_that_exits_is_restarted_and_the_others_keep_running(tmp_path) -> None:
    stack = _stack(tmp_path)
    aggregator = stack._spawn("aggregator", _exits(75), restartable=True)
    collector = stack._spawn("collector", _exits(0, after_s=30), restartable=True)
    try:
        aggregator.process.wait(10)
        first = aggregator.process
        stack.check_children()  # no error: the aggregator is started again
        assert aggregator.process is not first and len(aggregator.restarts) == 1
        assert collector.process.poll() is None and len(collector.restarts) == 0
    finally:
        stack.stop()


def test_a_service_in_a_crash_loop_or_dead_infrastructure_stops_the_stack(tmp_path) -> None:
    stack = _stack(tmp_path)
    stack._spawn("aggregator", _exits(75), restartable=True)
    try:
        for _ in range(RESTART_LIMIT):
            _wait_exit(stack)
            stack.check_children()
        _wait_exit(stack)
        with pytest.raises(RuntimeError, match=rf"aggregator exited with code 75 after {RESTART_LIMIT} restarts"):
            stack.check_children()
    finally:
        stack.stop()

    stack = _stack(tmp_path / "second")
    stack._spawn("clickhouse", _exits(1))
    _wait_exit(stack)
    time.sleep(0.1)
    with pytest.raises(RuntimeError, match=r"clickhouse exited with code 1; last lines .*\nworking"):
        stack.check_children()
