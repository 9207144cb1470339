"""The loop the remote steps run on (include/cc_intake/eventloop.py)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from include.cc_intake import eventloop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_the_remote_steps_run_on_uvloop_when_it_is_installed() -> None:
    # uvloop is in the lock (Airflow's uvicorn extras): the tasks get it.
    assert eventloop.run(_loop_module()).startswith("uvloop")


def test_without_uvloop_asyncio_runs_the_same_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert eventloop.loop_factory() is None
    assert eventloop.run(_loop_module()).startswith("asyncio")


def test_the_result_comes_back_and_an_error_is_raised_as_is() -> None:
    async def fail() -> None:
        await asyncio.to_thread(lambda: None)  # the copy's writer threads work on it too
        raise LookupError("remote folder missing")

    async def answer() -> int:
        return await asyncio.to_thread(lambda: 42)

    assert eventloop.run(answer()) == 42
    with pytest.raises(LookupError, match="remote folder missing"):
        eventloop.run(fail())
