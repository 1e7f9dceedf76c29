"""How parts live: those that own a connection, a server or a file are async context
managers, entered by ``app.py`` in start order and exited in reverse, so every connection is
closed on every way out; every long-running task runs inside an error boundary.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from monitor import logs
from monitor.backoff import backoff_delay

log = logs.get(__name__)


class Resource:
    """``open()`` on enter, ``aclose()`` on exit, whatever ended the block."""

    async def open(self) -> None:
        """Acquire what the part owns (connect, bind, create); nothing by default."""

    async def aclose(self) -> None:
        """Release it; must not raise for a part that was never opened."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def supervised(
    name: str,
    run: Callable[[], Awaitable[None]],
    restarts: Counter[str],
    *,
    on_failure: Callable[[], None] = lambda: None,
    initial: float = 1.0,
    maximum: float = 30.0,
    rng: random.Random | None = None,
) -> None:
    """The error boundary of a long-running task: if ``run`` fails, log it (once per kind
    of failure), count it, back off and run it again; ``on_failure`` first repairs what
    the failure may have left behind. Returns when ``run`` returns; cancellation passes."""
    rng = rng or random.Random()
    loop = asyncio.get_running_loop()
    attempt, last = 0, ""
    while True:
        started = loop.time()
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception as e:
            restarts[name] += 1
            if loop.time() - started > maximum:
                attempt = 0  # it ran well for a while: this is a new failure
            delay = backoff_delay(attempt, initial, maximum, rng)
            kind = f"{type(e).__name__}: {e}"
            if kind != last:
                log.error(
                    "task.failed",
                    task=name,
                    error=kind[:500],
                    retry_in_s=round(delay, 2),
                    exc_info=True,
                )
                last = kind
            on_failure()
        await asyncio.sleep(delay)
        attempt += 1


LEADING_POLL_S = 0.2


def always() -> bool:
    return True


async def leading(may_act: Callable[[], bool]) -> None:
    """Return once ``may_act`` says this monitor leads (SPEC 8.1): at once for a single
    monitor, never for a leader that lost its lease (it is stepping down, and its tasks
    are cancelled meanwhile)."""
    while not may_act():  # noqa: ASYNC110  (a deadline on a clock, not an event)
        await asyncio.sleep(LEADING_POLL_S)
