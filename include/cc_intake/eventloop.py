"""The event loop the remote steps run on: uvloop when it is installed, else asyncio's own.

The copy spends its time in asyncssh's packet handling, on one thread: uvloop's transports and
scheduling, written in C, made it 8-15 % faster on loopback with the same memory
(docs/benchmarks.md, issue #15). Airflow's api-server already installs uvloop (uvicorn's
standard extras); where it is missing, asyncio's loop runs the same code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default loop) when uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it is installed."""
    factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        loop = runner.get_loop()
        log.debug("event loop: %s.%s", type(loop).__module__, type(loop).__name__)
        return runner.run(main)
