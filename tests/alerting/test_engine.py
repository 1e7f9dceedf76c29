"""The alert lifecycle as a pure function of time (no clock, no I/O): rules firing,
repeats, escalation, acknowledgement, maintenance, broker outages, silent sites."""

from __future__ import annotations

import itertools

from monitor.alerting.engine import Alert, AlertEngine, Outcome, Route, Trouble, Window
from monitor.alerting.rules import DeviceState, RuleSettings, Threshold
from monitor.model import Device

T0 = 1_790_000_000.0
RULES = RuleSettings(
    no_data_timeout=60,
    fault_for=30,
    offline_for=10,
    severity="critical",
    thresholds=(Threshold("hot", "detector_temp_c", ">", 45, 300, "warning"),),
)
CREW = Route(
    "crew", ("webhook:http://crew",), ("tgram://boss",), repeat_interval=3600, escalate_after=900
)


def dev(i: int | str = 1, site: str = "aktau", kind: str = "xray_scanner") -> Device:
    return Device(f"xs-{i}", kind, site, "inspection-1")


class World:
    """Devices, an engine, and the time; every step returns what the engine decided."""

    def __init__(
        self,
        n: int = 1,
        routes: tuple[Route, ...] = (CREW,),
        site: str = "aktau",
        rules: RuleSettings = RULES,
    ) -> None:
        ids = itertools.count(1)
        self.engine = AlertEngine(
            routes, lambda d: rules, "monitor-1", new_id=lambda: f"a{next(ids)}"
        )
        self.site = site
        self.devices = {(site, f"xs-{i}"): DeviceState(dev(i, site)) for i in range(1, n + 1)}
        self.grace_from = T0
        self.broker_down_since: float | None = None
        self.now = T0
        for ds in self.devices.values():
            self.seen(ds.device.id)

    def ds(self, i: int = 1) -> DeviceState:
        return self.devices[(self.site, f"xs-{i}")]

    def seen(self, device_id: str, state: str | None = None) -> None:
        ds = self.devices[(self.site, device_id)]
        ds.last_seen = self.now
        if state is not None and state != ds.state:
            ds.state, ds.state_since = state, self.now

    def at(self, t: float) -> Outcome:
        self.now = T0 + t
        return self.engine.evaluate(self.devices, self.now, self.grace_from, self.broker_down_since)

    def run(self, until: float, step: float = 1.0, speak: tuple[str, ...] = ()) -> Outcome:
        """Evaluate every `step` seconds up to `until`; `speak` devices keep talking."""
        out = Outcome()
        t = self.now - T0
        while t < until:
            t = min(until, t + step)
            self.now = T0 + t
            for d in speak:
                self.seen(d)
            out.extend(self.at(t))
        return out


def events(out: Outcome) -> list[tuple[str, str, str]]:
    return [(n.payload["rule"], n.payload["device"], n.event) for n in out.notifications]


def test_no_data_fires_exactly_at_timeout_and_resolves_with_duration() -> None:
    w = World()
    assert events(w.at(59.9)) == []
    out = w.at(60)
    assert events(out) == [("no_data", "xs-1", "firing")]
    (n,) = out.notifications
    assert n.channels == ("webhook:http://crew",)
    assert n.payload["summary"] == "xs-1 (xray_scanner, inspection-1) sent no data for 60 s"
    assert n.payload["started_at"] == "2026-09-21T14:13:20Z"  # the last message
    assert events(w.at(200)) == []  # one firing, no repeat before repeat_interval
    w.seen("xs-1")
    out = w.at(200)
    assert events(out) == [("no_data", "xs-1", "resolved")]
    assert out.notifications[0].payload["duration_s"] == 200.0
    assert out.notifications[0].payload["resolved_at"] == "2026-09-21T14:16:40Z"
    assert [a.state for a in out.transitions] == ["resolved"]


def test_next_wakeup_is_the_earliest_deadline() -> None:
    w = World(n=2)
    w.at(10)
    w.seen("xs-2")
    assert w.engine.next_wakeup(w.devices, w.now, w.grace_from, None) == T0 + 60


def test_start_up_grace_for_devices_last_seen_before_the_restart() -> None:
    w = World()
    w.ds().last_seen = T0 - 3600  # seen an hour before the monitor (re)started at T0
    assert events(w.at(59)) == []
    assert events(w.at(60)) == [("no_data", "xs-1", "firing")]


def test_never_seen_registered_device_is_down_after_its_grace() -> None:
    w = World()
    w.ds().last_seen = None
    assert events(w.at(59)) == []
    out = w.at(60)
    assert events(out) == [("no_data", "xs-1", "firing")]


def test_offline_fires_after_offline_for_and_no_data_does_not_double_it() -> None:
    w = World()
    w.at(5)
    ds = w.ds()
    ds.online, ds.offline_since = False, w.now  # its Last Will
    assert events(w.at(14.9)) == []
    assert events(w.at(15)) == [("offline", "xs-1", "firing")]
    assert events(w.run(600, step=5)) == []  # silent for 10 min: still the one alert
    ds.online, ds.offline_since = True, None
    w.seen("xs-1")
    assert events(w.at(601)) == [("offline", "xs-1", "resolved")]


def test_a_reconnect_blip_shorter_than_offline_for_raises_nothing() -> None:
    w = World()
    ds = w.ds()
    w.at(5)
    ds.online, ds.offline_since = False, w.now
    w.at(12)
    ds.online, ds.offline_since = True, None
    w.seen("xs-1")
    assert events(w.run(40, speak=("xs-1",))) == []


def test_fault_fires_after_fault_for() -> None:
    w = World()
    w.seen("xs-1", "fault")
    assert events(w.run(29.5, step=0.5, speak=("xs-1",))) == []
    assert events(w.run(30, step=0.5, speak=("xs-1",))) == [("fault", "xs-1", "firing")]
    w.seen("xs-1", "ready")
    assert events(w.at(31)) == [("fault", "xs-1", "resolved")]


def test_flapping_faster_than_fault_for_raises_nothing() -> None:
    w = World()
    out = Outcome()
    for t in range(0, 300, 10):  # 10 s fault, 10 s ready, ...
        w.now = T0 + t
        w.seen("xs-1", "fault" if t % 20 == 0 else "ready")
        out.extend(w.at(t))
    assert events(out) == []


def test_threshold_needs_its_duration() -> None:
    w = World()
    ds = w.ds()
    ds.observe_metrics({"detector_temp_c": 47.0}, w.now, RULES.thresholds)
    assert events(w.run(299, step=10, speak=("xs-1",))) == []
    out = w.run(300, step=1, speak=("xs-1",))
    assert events(out) == [("threshold:hot", "xs-1", "firing")]
    assert out.notifications[0].payload["severity"] == "warning"
    ds.observe_metrics({"detector_temp_c": 44.0}, w.now, RULES.thresholds)
    assert events(w.at(301)) == [("threshold:hot", "xs-1", "resolved")]


def test_repeat_escalate_and_acknowledge() -> None:
    w = World()
    w.at(60)
    out = w.run(960, step=10)
    assert events(out) == [("no_data", "xs-1", "escalation")]
    assert out.notifications[0].channels == ("tgram://boss",)  # 900 s after firing at 60
    assert events(w.run(3660, step=10)) == [("no_data", "xs-1", "repeat")]
    alert = next(iter(w.engine.open.values()))
    acked = w.engine.acknowledge(alert.id, w.now, "aigerim")
    assert acked is not None
    assert events(acked) == [("no_data", "xs-1", "acknowledged")]
    assert [a.state for a in acked.transitions] == ["acknowledged"]
    assert events(w.run(20_000, step=60)) == []  # acknowledged: no more repeats
    w.seen("xs-1")
    out = w.at(20_001)
    assert events(out) == [("no_data", "xs-1", "resolved")]
    # the resolution reaches the escalation channel too
    assert out.notifications[0].channels == ("webhook:http://crew", "tgram://boss")


def test_routes_match_severity_kind_site_area() -> None:
    night = Route(
        "night",
        ("webhook:http://night",),
        (),
        3600,
        900,
        severity=frozenset({"critical"}),
        site=frozenset({"kuryk"}),
    )
    w = World(routes=(CREW, night), site="kuryk")
    out = w.at(60)
    assert sorted(n.route for n in out.notifications) == ["crew", "night"]
    w2 = World(routes=(night,), site="aktau")
    assert w2.at(60).notifications == []


def route(name: str, **match: set[str]) -> Route:
    return Route(
        name,
        (f"webhook:http://{name}",),
        (),
        3600,
        900,
        **{k: frozenset(v) for k, v in match.items()},  # type: ignore[arg-type]
    )


def test_the_monitors_own_alerts_reach_every_route_whose_severity_matches() -> None:
    """Issue 22: their site and area are ``*``, their kind ``monitor``: a route by site,
    area or kind is still told that the monitor hears nothing of its equipment."""
    routes = (
        route("aktau-scanners", site={"aktau"}, kind={"xray_scanner"}, area={"inspection-1"}),
        route("kuryk", site={"kuryk"}, severity={"critical"}),
        route("info-only", severity={"info"}),
    )
    w = World(routes=routes)
    w.broker_down_since = T0
    out = w.at(31)
    assert sorted((n.route, n.payload["rule"]) for n in out.notifications) == [
        ("aktau-scanners", "monitor_broker_down"),
        ("kuryk", "monitor_broker_down"),
    ]


def test_a_site_silent_reaches_the_routes_of_the_alerts_it_holds_back() -> None:
    """Issue 22: kind ``site`` and area ``*``, so a route by area or kind would get nothing
    during a site outage; it gets the site alert if it would have got one of its devices'.
    A route of another area, kind, site or severity gets nothing."""
    routes = (
        route("inspection", area={"inspection-1"}),
        route("scanners", kind={"xray_scanner"}, severity={"critical"}),
        route("everyone"),
        route("gates", area={"gate-in"}),
        route("kuryk", site={"kuryk"}),
        route("radiation", kind={"radiation_portal"}),
        route("warnings", severity={"warning"}),
    )
    w = World(n=5, routes=routes)
    out = w.at(60)
    assert events(out) == [("site_silent", "aktau", "firing")] * 3
    assert sorted(n.route for n in out.notifications) == ["everyone", "inspection", "scanners"]
    w.now = T0 + 61
    w.seen("xs-1")
    out = w.at(61)  # the site speaks: the same routes hear it is back
    assert sorted(n.route for n in out.notifications if n.event == "resolved") == [
        "everyone",
        "inspection",
        "scanners",
    ]


def test_maintenance_window_suppresses_notifications_until_it_ends() -> None:
    w = World()
    w.engine.windows["m1"] = Window("m1", "device", "xs-1", T0 + 30, T0 + 600, "tube")
    out = w.at(60)
    assert events(out) == []
    assert [a.rule for a in out.transitions] == ["no_data"]  # recorded all the same
    assert events(w.run(599, step=10)) == []
    assert events(w.at(600)) == [("no_data", "xs-1", "firing")]  # still down afterwards


def test_device_reporting_maintenance_is_not_notified() -> None:
    w = World()
    w.seen("xs-1", "maintenance")
    assert events(w.run(3600, step=30)) == []


def test_broker_outage_pauses_device_alerts_and_raises_one_alert() -> None:
    w = World(n=5)
    w.at(5)
    w.broker_down_since = T0 + 5
    out = w.run(5 + 180, step=1)  # three times the timeout
    assert events(out) == [("monitor_broker_down", "monitor-1", "firing")]
    assert out.notifications[0].payload["started_at"] == "2026-09-21T14:13:25Z"
    assert w.now - T0 >= 35
    # reconnect: every device gets a fresh grace equal to its timeout
    w.broker_down_since = None
    w.grace_from = w.now
    out = w.run(w.now - T0 + 59, step=1)
    assert events(out) == [("monitor_broker_down", "monitor-1", "resolved")]
    for i in range(1, 6):
        w.seen(f"xs-{i}")
    assert events(w.run(w.now - T0 + 30, step=1)) == []


def test_a_broker_outage_says_whether_the_monitor_is_connected() -> None:
    """Unreachable or deaf: the alert's facts say which, for its text in ru/kk."""
    for connected, why in ((False, None), (True, "is connected to the MQTT broker but hears")):
        w = World()
        out = w.engine.evaluate(
            w.devices, T0 + 31, w.grace_from, T0, broker_down_why=why, broker_connected=connected
        )
        assert events(out) == [("monitor_broker_down", "monitor-1", "firing")]
        assert out.notifications[0].facts == {"connected": connected}
        said = "hears" if connected else "cannot reach the MQTT broker"
        assert said in out.notifications[0].payload["summary"]


def test_broker_blip_under_30s_raises_nothing() -> None:
    w = World()
    w.broker_down_since = T0
    assert events(w.run(29, step=1)) == []
    w.broker_down_since = None
    assert events(w.at(29.5)) == []


def test_a_silent_site_is_one_notification_not_fifty() -> None:
    w = World(n=10)
    out = w.run(60, step=1)
    assert events(out) == [("site_silent", "aktau", "firing")]
    site = next(n for n in out.notifications).payload
    assert site["summary"].startswith("site aktau: 10 of 10 devices went silent together")
    assert sorted(a.device for a in out.transitions if a.rule == "no_data") == sorted(
        i for _, i in w.devices
    )
    assert events(w.run(600, step=10)) == []
    # the site speaks again: the site alert resolves; the ones still silent are now told
    for i in range(1, 9):
        w.seen(f"xs-{i}")
    out = w.at(601)
    assert sorted(events(out)) == sorted(
        [
            ("site_silent", "aktau", "resolved"),
            ("no_data", "xs-9", "firing"),
            ("no_data", "xs-10", "firing"),
        ]
    )
    # ... and the recovered devices' alerts resolve without a word (never announced)
    assert sorted(
        a.device for a in out.transitions if a.state == "resolved" and a.rule == "no_data"
    ) == [f"xs-{i}" for i in range(1, 9)]


def test_one_device_silent_is_not_a_site_outage() -> None:
    w = World(n=10)
    out = w.run(60, step=1, speak=tuple(f"xs-{i}" for i in range(2, 11)))
    assert events(out) == [("no_data", "xs-1", "firing")]


def test_fewer_than_three_devices_is_never_a_site_outage() -> None:
    w = World(n=2)
    assert sorted(events(w.at(60))) == [
        ("no_data", "xs-1", "firing"),
        ("no_data", "xs-2", "firing"),
    ]


def test_restored_alerts_are_not_notified_again() -> None:
    w = World()
    w.at(60)
    (alert,) = w.engine.open.values()
    fresh = World()
    fresh.engine.restore([alert], [])
    fresh.grace_from = T0 + 100  # restarted at t=100
    assert events(fresh.run(959, step=1)) == []  # no duplicate firing
    # ... nor a forgotten escalation: due 900 s after it fired at t=60
    assert events(fresh.at(960)) == [("no_data", "xs-1", "escalation")]
    fresh.seen("xs-1")  # recovered
    assert events(fresh.at(1001)) == [("no_data", "xs-1", "resolved")]


def test_monitor_conditions_fire_and_resolve_once() -> None:
    w = World()
    trouble = Trouble("monitor monitor-1: the disk spool is 83% full", {"fill": 0.83})
    spool: dict[str, Trouble | None] = {"monitor_spool_high": trouble}
    out = w.engine.evaluate(w.devices, T0 + 1, w.grace_from, None, spool)
    assert events(out) == [("monitor_spool_high", "monitor-1", "firing")]
    assert out.notifications[0].payload["severity"] == "warning"
    # the English summary (SPEC 5), and the facts its text in another language says
    assert out.notifications[0].payload["summary"] == trouble.summary
    assert out.notifications[0].facts == {"fill": 0.83}
    again = w.engine.evaluate(w.devices, T0 + 2, w.grace_from, None, spool)
    assert events(again) == []
    done = w.engine.evaluate(w.devices, T0 + 3, w.grace_from, None, {"monitor_spool_high": None})
    assert events(done) == [("monitor_spool_high", "monitor-1", "resolved")]


def test_a_device_that_falls_silent_after_its_site_is_told_on_its_own() -> None:
    """Issue 19.1: five devices, four stop: one site_silent. The fifth talks on for 20 s,
    then stops: its no_data is a new outage, notified, not swallowed by the open site
    alert (SPEC 5: the site alert covers only the devices that fell silent with it)."""
    w = World(n=5)
    out = w.run(60, step=1, speak=("xs-5",))
    assert events(out) == [("site_silent", "aktau", "firing")]
    (site_alert,) = [a for a in w.engine.open.values() if a.rule == "site_silent"]
    assert site_alert.members == ["xs-1", "xs-2", "xs-3", "xs-4"]
    w.run(80, step=1, speak=("xs-5",))
    out = w.run(141, step=1)  # xs-5 silent since 80: its no_data at 140
    assert events(out) == [("no_data", "xs-5", "firing")]
    # and the site alert stays what it was: the four, until one of them speaks
    w.seen("xs-1")
    assert sorted(events(w.at(142))) == [
        ("no_data", "xs-2", "firing"),
        ("no_data", "xs-3", "firing"),
        ("no_data", "xs-4", "firing"),
        ("site_silent", "aktau", "resolved"),
    ]


def test_devices_dead_long_before_are_not_a_site_outage_with_a_new_one() -> None:
    """A site alert is devices falling silent together: three scanners dead for an hour
    (each told on its own) and a fourth that stops now are one new no_data, not a
    site_silent that would swallow it (4 of 5 silent, but not together)."""
    w = World(n=5)
    out = w.run(3700, step=10, speak=("xs-4", "xs-5"))
    assert ("site_silent", "aktau", "firing") not in events(out)
    out = w.run(3800, step=1, speak=("xs-5",))  # xs-4 stops at 3700
    assert events(out) == [("no_data", "xs-4", "firing")]


def test_forgetting_a_device_resolves_its_alerts_and_leaves_the_site_alert() -> None:
    w = World(n=4)
    w.run(60, step=1)
    assert {a.rule for a in w.engine.open.values()} == {"no_data", "site_silent"}
    out = Outcome()
    for i in range(1, 5):
        out.extend(w.engine.forget(("aktau", f"xs-{i}"), w.now))
    resolved = {(a.rule, a.device, a.facts.get("resolution")) for a in out.transitions}
    assert resolved == {
        *{("no_data", f"xs-{i}", "forgotten") for i in range(1, 5)},
        ("site_silent", "aktau", None),
    }
    assert events(out) == [("site_silent", "aktau", "resolved")]  # only it was told
    assert not w.engine.open


def test_the_same_id_at_two_sites_has_alerts_of_its_own() -> None:
    """SPEC 2: xs-1 at aktau in fault, xs-1 at kuryk talking: aktau's fault fires."""
    engine = AlertEngine([CREW], lambda d: RULES, "m", new_id=iter(range(99)).__next__)
    aktau, kuryk = DeviceState(dev(1, "aktau")), DeviceState(dev(1, "kuryk"))
    devices = {aktau.device.key: aktau, kuryk.device.key: kuryk}
    aktau.last_seen = kuryk.last_seen = T0
    aktau.state, aktau.state_since = "fault", T0
    for t in range(0, 31):
        kuryk.last_seen = aktau.last_seen = T0 + t
        out = engine.evaluate(devices, T0 + t, T0, None)
    assert [(n.payload["site"], n.payload["rule"]) for n in out.notifications] == [
        ("aktau", "fault")
    ]
    assert set(engine.open) == {("fault", "aktau", "xs-1")}


def test_a_site_window_or_its_members_in_maintenance_keep_site_silent_quiet() -> None:
    """Planned works at a site: the site alert is recorded, nobody paged (review of 19)."""
    w = World(n=4)
    w.engine.windows["w"] = Window("w", "site", "aktau", T0 + 30, T0 + 7200)
    out = w.run(600, step=10)
    assert [a.rule for a in out.transitions if a.state == "firing"].count("site_silent") == 1
    assert events(out) == []


def test_a_window_limited_to_a_site_covers_that_site_only() -> None:
    aktau, kuryk = dev(1, "aktau"), dev(1, "kuryk")
    area = Window("w", "area", "inspection-1", T0, T0 + 60, site="kuryk")
    device = Window("d", "device", "xs-1", T0, T0 + 60, site="aktau")
    assert (area.covers(aktau, T0), area.covers(kuryk, T0)) == (False, True)
    assert (device.covers(aktau, T0), device.covers(kuryk, T0)) == (True, False)
    assert Window("u", "area", "inspection-1", T0, T0 + 60).covers(aktau, T0)  # every site


def test_a_site_silent_across_a_restart_keeps_the_device_that_fell_silent_with_it() -> None:
    """The link is cut, the monitor is away longer than a device's timeout: after the start
    the slow device (300 s) joins the site alert when its own deadline passes."""
    rules = {"xray_scanner": RULES, "weighbridge": RuleSettings(300, 30, 10, "critical")}
    ids = itertools.count()
    engine = AlertEngine([CREW], lambda d: rules[d.kind], "m", new_id=lambda: f"a{next(ids)}")
    devices = {}
    for d in [*(dev(i) for i in range(1, 5)), Device("wb-1", "weighbridge", "aktau", "gate")]:
        devices[d.key] = DeviceState(d, last_seen=T0)  # the link cut at T0
    start = T0 + 400  # the monitor back: a fresh grace for every device
    told = []
    for t in range(0, 400, 5):
        out = engine.evaluate(devices, start + t, start, None)
        told += [(n.payload["rule"], n.payload["device"]) for n in out.notifications]
    assert told == [("site_silent", "aktau")]
    (site_alert,) = [a for a in engine.open.values() if a.rule == "site_silent"]
    assert site_alert.started_at == T0 and "wb-1" in site_alert.members


def test_a_restart_restores_every_open_alert_and_ungroups_orphans() -> None:
    """Open alerts beyond any page size come back; one grouped by a site alert that is
    not open any more speaks for itself again."""
    orphan = Alert("a0", "no_data", "aktau", "x", "xray_scanner", "xs-0", "critical", "s", T0, T0)
    orphan.grouped_by = "gone"
    engine = AlertEngine([CREW], lambda d: RULES, "m")
    engine.restore([orphan], [])
    assert engine.open[("no_data", "aktau", "xs-0")].grouped_by is None


def test_summary_localized_only_for_a_route_in_another_language() -> None:
    """SPEC 5: a route in Russian or Kazakh adds ``summary_localized``; one without a
    language, or in English, gets the contract's JSON exactly."""
    routes = tuple(
        Route(name, (f"webhook:http://{name}",), (), 3600, 900, language=lang)
        for name, lang in (("none", None), ("en", "en"), ("kk", "kk"))
    )
    out = World(routes=routes).at(60)
    by_route = {n.route: n.payload for n in out.notifications}
    assert "summary_localized" not in by_route["none"]
    assert "summary_localized" not in by_route["en"]  # it was, before issue 21
    assert by_route["kk"]["summary_localized"] == (
        "xs-1 (Рентгендік сканер, inspection-1): 1 минуттан астам уақыт бойы деректер жоқ"
    )
