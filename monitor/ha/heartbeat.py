"""The dead man's switch (SPEC 8.1): ``heartbeat.url`` called every ``heartbeat.interval``
while the leader is healthy, so that someone outside (a healthchecks-style service, the
crew's pager) learns when no monitor is: the calls stop when the leader is unhealthy
(the broker not heard, writes not flowing), stands by, or is gone."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable

import aiohttp

from monitor import logs
from monitor.config import Heartbeat
from monitor.stats import Stats

log = logs.get(__name__)


def _where(url: str) -> str:
    """The service, for the log: a healthchecks URL's path is its secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}"


async def beat(config: Heartbeat, healthy: Callable[[], bool], stats: Stats) -> None:
    """Call the URL every interval while ``healthy()``; each failure counted, said once
    until it recovers."""
    assert config.url is not None
    timeout = aiohttp.ClientTimeout(total=config.timeout)
    failing: str | None = None
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            await asyncio.sleep(config.interval)
            if not healthy():
                continue
            try:
                async with session.get(config.url) as r:
                    error = None if r.status < 300 else f"HTTP {r.status}"
            except (aiohttp.ClientError, TimeoutError) as e:
                error = type(e).__name__  # its text may hold the URL, and so the secret
            if error is None:
                stats.heartbeats_sent += 1
                if failing is not None:
                    log.info("heartbeat.recovered", service=_where(config.url))
                failing = None
                continue
            stats.heartbeat_failures += 1
            if error != failing:
                log.error("heartbeat.failing", service=_where(config.url), error=error)
            failing = error
