"""The shared link: which Airflow pool the copy and report steps take, and each copy's rate.

Contract §8/§8.1 (issue #11). Copies of several providers may run at once on different Celery
workers, all through the same physical link. Two Airflow mechanisms share it, no home-made lock:

- **Concurrency**: the Airflow pool named by the parse-time variable ``CC_INTAKE_LINK_POOL``
  (``cc_intake_link`` in ``airflow_settings.yaml``; its slots = copies allowed at once). Unset,
  no pool is used: a task in a pool that does not exist would never be scheduled, so the pool is
  opt-in and ``make up``, ``make cluster`` and ``make settings`` create it.
- **Bandwidth**: the run-time setting ``CC_INTAKE_LINK_BUDGET`` (e.g. ``5.6Mbit``, 70 % of an
  8 Mbit/s link; default none = no cap) is split evenly among the pool's slots; the copy runs
  at the lower of that share and the provider's own ``recordings.max_bandwidth``.

A task cannot read a pool's size: the Task SDK of Airflow 3.3 offers no pool call (its
execution API serves connections, variables, XComs and task states, not pools), and tasks have
no metadata-DB access. The slots therefore come from the run-time setting
``CC_INTAKE_LINK_SLOTS``, which ``make up`` / ``make cluster`` export from the pool they create
and ``make settings`` writes as the Variable ``cc_intake_link_slots`` next to the pool.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from include.cc_intake.config import ProviderConfig, parse_bandwidth
from include.cc_intake.errors import ConfigError

log = logging.getLogger(__name__)

LINK_POOL = "CC_INTAKE_LINK_POOL"  # parse time: the pool's name; unset = no pool
LINK_BUDGET = "CC_INTAKE_LINK_BUDGET"  # run time: the link's budget, e.g. 5.6Mbit
LINK_SLOTS = "CC_INTAKE_LINK_SLOTS"  # run time: the pool's slots (a task cannot read them)
DEFAULT_POOL_NAME = "cc_intake_link"


def task_kwargs(cfg: ProviderConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The operator arguments of a step that uses the link: Celery queue, and pool if named.

    Parse time: environment only (a DAG file never reads a Variable).
    """
    environ = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {"queue": cfg.recordings.queue}
    pool = environ.get(LINK_POOL, "").strip()
    if pool:
        kwargs["pool"] = pool
    return kwargs


def parse_slots(raw: str) -> int:
    """``CC_INTAKE_LINK_SLOTS`` as a positive integer, or a ConfigError naming the setting."""
    text = raw.strip()
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"{LINK_SLOTS}={raw!r}: expected the link pool's number of slots, an integer >= 1"
        )
    return int(text)


def share_of_budget(budget: str | None, slots: str | None) -> int | None:
    """Bytes per second one copy may use: the budget divided among the slots (None = no cap).

    A budget without slots is split among one slot (the whole budget per copy), with a warning:
    without the pool's size the split cannot be known.
    """
    if budget is None or not budget.strip():
        return None
    try:
        total = parse_bandwidth(budget)
    except ValueError as exc:
        raise ConfigError(f"{LINK_BUDGET}={budget!r}: {exc}") from None
    if slots is None or not slots.strip():
        log.warning(
            "%s is set but %s is not: each copy may use the whole budget", LINK_BUDGET, LINK_SLOTS
        )
        return total
    return max(1, total // parse_slots(slots))


def lower_cap(provider_cap: int | None, share: int | None) -> int | None:
    """The lower of two caps; None means no cap."""
    caps = [c for c in (provider_cap, share) if c is not None]
    return min(caps) if caps else None


def copy_rate(cfg: ProviderConfig) -> int | None:
    """The copy's rate in bytes per second at run time (tasks only: may read Variables)."""
    from include.cc_intake.airflow.runtime_settings import runtime_setting

    share = share_of_budget(runtime_setting(LINK_BUDGET), runtime_setting(LINK_SLOTS))
    return lower_cap(cfg.recordings.max_bandwidth, share)


def with_rate(cfg: ProviderConfig, rate: int | None) -> ProviderConfig:
    """``cfg`` with ``recordings.max_bandwidth`` set to ``rate`` (the copy's effective cap)."""
    if rate == cfg.recordings.max_bandwidth:
        return cfg
    recordings = cfg.recordings.model_copy(update={"max_bandwidth": rate})
    return cfg.model_copy(update={"recordings": recordings})
