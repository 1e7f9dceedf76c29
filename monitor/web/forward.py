"""A standby's changes go to the leader (SPEC 8.1): an acknowledgement, a window or a
forgotten device asked of a standby's board is forwarded, as it came, to the API of the
monitor that leads now, and its answer returned; the standby itself writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from aiohttp import web

from monitor import logs
from monitor.web.api import Handler

log = logs.get(__name__)

FORWARD_TIMEOUT_S = 10.0
_PASSED = ("Authorization", "Content-Type", "Accept-Language")
FORWARDED = "X-Monitor-Forwarded"  # once: a standby never forwards what was forwarded


def _refusal(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


def forwarder(leader: Callable[[], str | None], own: str) -> Handler:
    """``leader()``: the leader's API base URL (the leadership row says it), or None;
    ``own``: this monitor's (``ha.api_url``), never forwarded to."""

    async def forward(request: web.Request) -> web.StreamResponse:
        target = leader()
        if target is None:
            return _refusal(503, "this monitor stands by and no monitor leads now: try again")
        if FORWARDED in request.headers or target == own:
            log.error("api.forward_loop", leader=target, own=own)
            return _refusal(
                508,
                f"this monitor stands by, and the leader's address {target} leads back to a"
                " standby: set ha.api_url on each monitor to its own address",
            )
        headers = {h: v for h in _PASSED if (v := request.headers.get(h)) is not None}
        headers[FORWARDED] = own
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(
                    request.method,
                    target + request.rel_url.path_qs,
                    data=await request.read(),
                    headers=headers,
                    allow_redirects=False,
                ) as answer,
            ):
                body = await answer.read()
                kind = answer.headers.get("Content-Type", "application/json")
        except (aiohttp.ClientError, TimeoutError) as e:
            log.warning("api.forward_failed", leader=target, error=type(e).__name__)
            return _refusal(502, f"this monitor stands by; the leader at {target} did not answer")
        return web.Response(status=answer.status, body=body, headers={"Content-Type": kind})

    return forward
