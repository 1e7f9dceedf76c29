"""The HTTP API (SPEC 6): health, metrics, devices, alerts, acknowledgements, maintenance.

Mutating calls need ``Authorization: Bearer <token>`` (compared in constant time); with no
token configured they are refused. Bodies are capped. Bound to 127.0.0.1 by default.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from monitor import durations, logs
from monitor.alerting.engine import Alert, Window, rfc3339
from monitor.alerting.notify import Notifier, trial_message
from monitor.alerting.service import AlertService
from monitor.alerting.store import Store
from monitor.alerting.texts import sentence
from monitor.alerting.texts import summary as localized_summary
from monitor.clock import Clock, wall_offset
from monitor.config import HTTP, Duration, KnownNames, mask_url
from monitor.i18n import LANGUAGES, Language, texts
from monitor.i18n import Duration as Lasted
from monitor.lifecycle import Resource
from monitor.model import DeviceKey, is_unicode, time_problem, window_problem
from monitor.stats import Stats
from monitor.web.board_texts import board_texts

log = logs.get(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_FAULTS_LOGGED = 100  # kinds of fault, each logged once
STATIC = Path(__file__).parent / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Health:
    """What ``/health`` says: unhealthy while there is any reason, and the facts behind it."""

    reasons: list[str]
    warnings: list[str]
    broker_connected: bool
    influx_healthy: bool
    last_write_ok: float | None  # wall clock seconds
    # SPEC 8.1: "leader" (a single monitor leads itself), or "standby": it serves the board
    # from the shared store and forwards changes to the leader
    role: str = "leader"
    leader: str | None = None  # the standby's: the holder of the leadership, if any


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _plain(text: str) -> str:
    """Text a person wrote: it is shown in terminals and pages, and stored."""
    if _CONTROL.search(text) or not is_unicode(text):
        raise ValueError("must be text without control characters or lone surrogates")
    return text


def _moment(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError("a time needs a time zone, e.g. 2026-11-22T08:00:00+05:00")
    if problem := time_problem(t.timestamp()):
        raise ValueError(problem)
    return t


PlainText = Annotated[str, AfterValidator(_plain)]
Moment = Annotated[datetime, AfterValidator(_moment)]


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["device", "kind", "area", "site"]
    value: str = Field(min_length=1, max_length=64)  # its shape is checked by window_problem
    site: str | None = Field(None, min_length=1, max_length=64)  # only at this site
    starts: Moment | None = None  # default: now
    ends: Moment | None = None
    duration: Duration | None = None  # instead of ends, e.g. "2h"
    reason: PlainText = Field("", max_length=500)
    by: PlainText = Field("api", max_length=64)

    @model_validator(mode="after")
    def _end(self) -> MaintenanceRequest:
        if (self.ends is None) == (self.duration is None):
            raise ValueError("give either ends or duration")
        return self


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: PlainText = Field("api", max_length=64)


class NotifyTestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: PlainText = Field(min_length=1, max_length=200)
    by: PlainText = Field("api", max_length=64)


def _shown(t: float | None, offset: float) -> str | None:
    """A monotonic time as the wall clock says it (RFC 3339)."""
    return rfc3339(None if t is None else t + offset)


def _alert_json(a: Alert, now: float, offset: float, lang: Language = "en") -> dict[str, Any]:
    payload = a.payload(now, wall_offset=offset)
    localized: dict[str, Any] = {}
    if lang != "en":
        localized["summary_localized"] = localized_summary(payload, a.facts, lang)
    return {
        **payload,
        **localized,
        # what people read (the board, the CLI), in ?lang= (English too)
        "summary_text": sentence(payload, a.facts, lang),
        "duration_text": _human(a.duration(now), lang),
        "duration_phrase": _for(a.duration(now), lang),
        "fired_at": _shown(a.fired_at, offset),
        "acknowledged_at": _shown(a.acked_at, offset),
        "acknowledged_by": a.acked_by,
        "notified": sorted(a.notified),
        "grouped_by": a.grouped_by,
    }


def _human(seconds: float, lang: Language) -> str:
    """How long, as a person of that language says it (English: as it always was)."""
    return durations.human(seconds) if lang == "en" else texts(lang).duration(seconds)


def _for(seconds: float, lang: Language) -> str:
    """How long a state has lasted, as the board shows it under a tile or an alert (the
    language puts the duration in the case its words need: ru ``уже 21 минуту``)."""
    t = texts(lang)
    if (now := t.just_now(seconds)) is not None:  # not "for 0 seconds"
        return now
    return t.fill(t.pgettext("board", "for %(duration)s"), duration=Lasted(seconds))


def _window_json(w: Window) -> dict[str, Any]:
    return {
        "id": w.id,
        "scope": w.scope,
        "value": w.value,
        "site": w.site,
        "starts": rfc3339(w.starts),
        "ends": rfc3339(w.ends),
        "reason": w.reason,
        "created_by": w.created_by,
    }


class Api(Resource):
    def __init__(
        self,
        config: HTTP,
        service: AlertService,
        store: Store,
        stats: Stats,
        health: Callable[[], Health],
        notifier: Notifier,
        clock: Clock,
        names: dict[DeviceKey, str],
        release_today: Callable[[], dict[str, Any]] | None = None,
        language: Language = "en",
        forget: Callable[[DeviceKey], str] | None = None,
        registered: Collection[DeviceKey] = (),
        known: Callable[[], KnownNames] | None = None,
    ) -> None:
        self._forget = forget  # SPEC 5: the wiring's, which knows every part that keeps one
        self._registered = registered
        # the sites, areas and devices a window may name: the config's and those heard
        self._known = known
        self._language = language  # the board's default (config `language`)
        self._config = config
        self._release_today = release_today  # SPEC 9, when passages are on
        self._service = service
        self._store = store
        self._health = health
        self._notifier = notifier
        self._clock = clock
        self._names = names
        self._token = config.token.get_secret_value().encode() if config.token else None
        self._runner: web.AppRunner | None = None
        self.started = clock.monotonic()
        self._stats = stats
        self._metrics: Callable[[], bytes] | None = None  # built at the first scrape
        self.port: int | None = None
        self._faults: set[tuple[str, str]] = set()  # (route, error) already logged
        self.public_url = config.public_url  # the board as people reach it (a reload sets it)
        # A standby's (SPEC 8.1): changes (ack, windows, forget) go to the leader through it
        self.forward: Handler | None = None

    def reconfigure(
        self,
        names: dict[DeviceKey, str],
        registered: Collection[DeviceKey],
        language: Language,
        public_url: str | None,
    ) -> None:
        """What a reloaded config changes here (SPEC 10); the server and its token stay."""
        self._names = names
        self._registered = registered
        self._language = language
        self.public_url = public_url

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._contained])
        r = app.router
        r.add_get("/", self.board)
        r.add_static("/static/", STATIC, show_index=False)
        r.add_get("/health", self.health)
        r.add_get("/metrics", self.metrics)
        r.add_get("/api/devices", self.devices)
        r.add_get("/api/devices/{device}", self.device)
        r.add_delete("/api/devices/{device}", self._auth(self.forget_device))
        r.add_get("/api/alerts", self.alerts)
        r.add_get("/api/passages", self.passages)
        r.add_get("/api/i18n", self.i18n)
        r.add_get("/api/alerts/{alert_id}", self.alert)
        r.add_post("/api/alerts/{alert_id}/ack", self._auth(self.ack))
        r.add_post("/api/notify-test", self._auth(self.notify_test))
        r.add_get("/api/maintenance", self.maintenance)
        r.add_post("/api/maintenance", self._auth(self.add_maintenance))
        r.add_delete("/api/maintenance/{window_id}", self._auth(self.remove_maintenance))
        return app

    async def open(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._config.host, self._config.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])  # the real one when port 0 was asked
        log.info(
            "http.listening",
            host=self._config.host,
            port=self.port,
            mutations="enabled" if self._token else "disabled (no MONITOR_HTTP__TOKEN)",
        )

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _contained(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Errors of the API are JSON with a reason (an unknown path, a wrong method too). A
        fault of ours is logged once per route and kind, with its traceback, not once per
        request: anyone who can reach the port can repeat a request."""
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status < 400 or not request.path.startswith("/api/"):
                raise
            allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
            return _error(e.status, e.reason.lower(), allow)
        except Exception as e:
            resource = request.match_info.route.resource
            fault = (resource.canonical if resource else "?", type(e).__name__)
            if fault not in self._faults and len(self._faults) < MAX_FAULTS_LOGGED:
                self._faults.add(fault)
                log.error("http.failed", exc_info=True, route=fault[0], error=fault[1])
            return _error(500, "the monitor failed to answer this request (see its log)")

    # -- auth --

    def _auth(self, handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if self.forward is not None:  # a standby changes nothing itself: the leader does
                return await self.forward(request)
            if self._token is None:
                return _error(
                    403,
                    "changes through the API are disabled: no API token is"
                    " configured (MONITOR_HTTP__TOKEN)",
                )
            header = request.headers.get("Authorization")
            if header is None:
                return _unauthorized("an 'Authorization: Bearer <token>' header is required")
            try:
                # aiohttp keeps the bytes it could not decode as lone surrogates
                raw = header.encode("utf-8")
            except UnicodeEncodeError:
                return _error(400, "the Authorization header is not UTF-8 text")
            scheme, _, given = raw.partition(b" ")
            if scheme.lower() != b"bearer" or not given:
                return _unauthorized("the Authorization header must be 'Bearer <token>'")
            if not hmac.compare_digest(given, self._token):
                return _unauthorized("the API token is not the configured one")
            return await handler(request)

        return guarded

    # -- the status board --

    async def board(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # -- health and metrics --

    async def health(self, request: web.Request) -> web.Response:
        h = self._health()
        body = {
            "status": "ok" if not h.reasons else "unhealthy",
            "reasons": h.reasons,
            "warnings": h.warnings,
            "broker_connected": h.broker_connected,
            "influx_healthy": h.influx_healthy,
            "last_write_ok": rfc3339(h.last_write_ok),
            "role": h.role,
            **({"leader": h.leader} if h.role == "standby" else {}),
        }
        return web.json_response(body, status=503 if h.reasons else 200)

    def _scrape(self) -> bytes:
        if self._metrics is None:  # prometheus_client is imported here, not at start-up
            from monitor.web.metrics import exposition

            self._metrics = exposition(self._stats, self._notifier)
        return self._metrics()

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self._scrape(), content_type="text/plain", charset="utf-8")

    # -- devices --

    def _now(self) -> tuple[float, float]:
        """Monotonic now, and what to add to a monotonic time to show it."""
        return self._clock.monotonic(), wall_offset(self._clock)

    def _device_json(
        self, key: DeviceKey, now: float, offset: float, lang: Language = "en"
    ) -> dict[str, Any]:
        liveness = self._service.liveness
        ds = liveness.devices[key]
        d = ds.device
        status = liveness.status(key, now)
        since = liveness.since.get(key)
        open_alerts = [
            a.id
            for a in self._service.engine.open.values()
            if (a.site, a.device) == key and a.kind == d.kind
        ]
        return {
            "device": d.id,
            "name": self._names.get(key),
            "site": d.site,
            "area": d.area,
            "kind": d.kind,
            "up": None if status is None else status[0],
            "state": None if status is None else status[1],
            "reason": None if status is None else status[2],
            "reported_state": ds.state,
            "last_seen": _shown(ds.last_seen, offset),
            "last_seen_age_s": None if ds.last_seen is None else round(now - ds.last_seen, 3),
            "in_maintenance": self._service.engine.in_maintenance(d, now),
            "open_alerts": open_alerts,
            "pending": liveness.pending(key, now) if status and status[0] else [],
            "since": _shown(since, offset),
            "for_s": None if since is None else round(now - since, 1),
            "for_text": None if since is None else _human(now - since, lang),
            "for_phrase": None if since is None else _for(now - since, lang),
        }

    async def devices(self, request: web.Request) -> web.Response:
        now, offset = self._now()
        lang = self._lang(request)
        items = [self._device_json(k, now, offset, lang) for k in self._service.liveness.devices]
        items.sort(key=lambda x: (x["site"], x["area"], x["kind"], x["device"]))
        return web.json_response({"devices": items})

    async def passages(self, request: web.Request) -> web.Response:
        """Today's release time at the post, from the monitor's own state (no InfluxDB)."""
        if self._release_today is None:
            return web.json_response({"enabled": False})
        today = self._release_today()
        lang = self._lang(request)
        said = {
            f"{key}_text": None if today.get(key) is None else _human(today[key], lang)
            for key in ("median_s", "p90_s")
        }
        return web.json_response({"enabled": True, "today": {**today, **said}})

    async def i18n(self, request: web.Request) -> web.Response:
        """The board's words in ``?lang=`` (default: the config's ``language``)."""
        lang = self._lang(request) if "lang" in request.query else self._language
        return web.json_response({**board_texts(texts(lang)), "languages": list(LANGUAGES)})

    @staticmethod
    def _lang(request: web.Request) -> Language:
        asked = request.query.get("lang", "en")
        return next((lang for lang in LANGUAGES if lang == asked), "en")

    def _find(self, request: web.Request, among: Collection[DeviceKey]) -> DeviceKey | web.Response:
        """The device a request names: ``/api/devices/{device}``, ``?site=`` where the id
        is at more than one site (SPEC 2)."""
        device_id = request.match_info["device"]
        site = request.query.get("site")
        if site is not None:
            key = (site, device_id)
            return key if key in among else _error(404, f"no device {device_id!r} at {site!r}")
        keys = sorted(k for k in among if k[1] == device_id)
        if not keys:
            return _error(404, f"no device {device_id!r}")
        if len(keys) > 1:
            sites = ", ".join(k[0] for k in keys)
            return _error(400, f"{device_id!r} is at more than one site ({sites}): add ?site=")
        return keys[0]

    async def device(self, request: web.Request) -> web.Response:
        key = self._find(request, self._service.liveness.devices)
        if isinstance(key, web.Response):
            return key
        now, offset = self._now()
        body = self._device_json(key, now, offset)
        ds = self._service.liveness.devices[key]
        body["metrics"] = ds.metrics
        body["recent_alerts"] = [
            _alert_json(a, now, offset)
            for a in self._store.alerts(False, 2000)
            if (a.site, a.device) == key
        ][:20]
        return web.json_response(body)

    async def forget_device(self, request: web.Request) -> web.Response:
        """SPEC 5: a discovered device that is gone (decommissioned, a test publish, a site
        another collector has now); a registered one is the config's to remove."""
        known = {*self._service.liveness.devices, *self._registered}
        key = self._find(request, known)
        if isinstance(key, web.Response):
            return key
        if self._forget is None:
            return _error(403, "forgetting devices is not wired in this instance")
        outcome = self._forget(key)
        site, device_id = key
        if outcome == "registered":
            return _error(
                409,
                f"{site}/{device_id} is registered in the config: remove it from devices"
                " there (and reload or restart) instead",
            )
        if outcome != "forgotten":
            return _error(404, f"no device {device_id!r} at {site!r}")
        return web.json_response({"forgotten": {"site": site, "device": device_id}})

    # -- alerts --

    async def alerts(self, request: web.Request) -> web.Response:
        which = request.query.get("state", "open")
        if which not in ("open", "all"):
            return _error(400, "state must be open or all")
        now, offset = self._now()
        alerts = self._store.alerts(open_only=which == "open")
        lang = self._lang(request)
        return web.json_response({"alerts": [_alert_json(a, now, offset, lang) for a in alerts]})

    async def alert(self, request: web.Request) -> web.Response:
        """One alert, open or not: what a link in a notification opens on the board."""
        alert = self._store.alert(request.match_info["alert_id"])
        if alert is None:
            return _error(404, "no such alert")
        return web.json_response(_alert_json(alert, *self._now(), self._lang(request)))

    async def notify_test(self, request: web.Request) -> web.Response:
        """A test message through a route's channels (its escalation channels too), each
        tried once now: delivered, or why not (SPEC 10). Nothing is queued or repeated."""
        body = await _body(request, NotifyTestRequest)
        if isinstance(body, web.Response):
            return body
        engine = self._service.engine
        route = next((r for r in engine.routes if r.name == body.route), None)
        if route is None:
            names = ", ".join(r.name for r in engine.routes) or "none"
            return _error(404, f"no route {body.route!r} (routes: {names})")
        board = None if self.public_url is None else f"{self.public_url}/"
        message = trial_message(
            route.name, route.language, engine.instance, body.by, self._clock.now(), board
        )
        channels = [(c, False) for c in route.channels]
        channels += [(c, True) for c in route.escalate_to if c not in route.channels]
        tried = await self._notifier.test(channels, message)
        return web.json_response(
            {
                "route": route.name,
                "channels": [
                    {
                        "channel": mask_url(t.channel),
                        "escalation": t.escalation,
                        "delivered": t.error is None,
                        "error": t.error,
                    }
                    for t in tried
                ],
                "delivered": sum(t.error is None for t in tried),
                "failed": sum(t.error is not None for t in tried),
            }
        )

    async def ack(self, request: web.Request) -> web.Response:
        body = await _body(request, AckRequest)
        if isinstance(body, web.Response):
            return body
        alert_id = request.match_info["alert_id"]
        alert = self._service.acknowledge(alert_id, body.by)
        if alert is None:
            return _error(404, f"no open alert {alert_id!r}")
        return web.json_response(_alert_json(alert, *self._now(), self._lang(request)))

    # -- maintenance --

    async def maintenance(self, request: web.Request) -> web.Response:
        windows = sorted(self._service.engine.windows.values(), key=lambda w: w.starts)
        return web.json_response({"windows": [_window_json(w) for w in windows]})

    async def add_maintenance(self, request: web.Request) -> web.Response:
        body = await _body(request, MaintenanceRequest)
        if isinstance(body, web.Response):
            return body
        starts = body.starts.timestamp() if body.starts else self._clock.now()
        ends = body.ends.timestamp() if body.ends else starts + (body.duration or 0)
        # before anything is saved: a refused window changes nothing (SPEC 6)
        if problem := window_problem(body.scope, body.value, starts, ends, body.site):
            return _error(400, problem)
        # a name nobody knows would silence nothing, and say nothing (SPEC 10)
        if self._known is not None:
            names = self._known()
            if problem := names.window_problem(body.scope, body.value, body.site):
                return _error(400, problem)
        if body.scope == "device" and body.site is None:
            known = {*self._service.liveness.devices, *self._registered}
            if len(sites := sorted(s for s, i in known if i == body.value)) > 1:
                return _error(
                    400, f"{body.value} is at more than one site ({', '.join(sites)}): give site"
                )
        window = self._service.add_window(
            body.scope, body.value, starts, ends, body.reason, body.by, body.site
        )
        return web.json_response(_window_json(window), status=201)

    async def remove_maintenance(self, request: web.Request) -> web.Response:
        if not self._service.remove_window(request.match_info["window_id"]):
            return _error(404, "no such maintenance window")
        return web.json_response({"deleted": request.match_info["window_id"]})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _unauthorized(message: str) -> web.Response:
    return _error(401, message, {"WWW-Authenticate": "Bearer"})


M = TypeVar("M", bound=BaseModel)


async def _body(request: web.Request, model: type[M]) -> M | web.Response:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as e:
        problems = [
            f"{'.'.join(map(str, x['loc'])) or 'body'}: {x['msg'].removeprefix('Value error, ')}"
            for x in e.errors(include_url=False)
        ]
        return web.json_response({"error": "invalid request", "problems": problems}, status=400)
