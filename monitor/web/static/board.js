// The status board: polls the monitor's API and redraws in place (no full reloads).
"use strict";

const REFRESH_MS = 3000;
// The board's words in the chosen language (GET /api/i18n), switched without a reload.
let T = { language: "en", words: {}, kinds: {}, states: {}, reasons: {}, severities: {}, alert_states: {} };
let lang = localStorage.getItem("monitorLang");

function w(key, fallback) { return T.words[key] || fallback; }

// A word beside a value is a template with the value's place in it ("%(n)s up"; Russian
// "работают: %(n)s"): each language puts the number where it needs no agreement. Only
// the named places are filled, with text (never markup).
function fill(key, fallback, values) {
  return w(key, fallback).replace(/%\((\w+)\)s/g, (all, name) => (name in values ? String(values[name]) : all));
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function statusClass(d) {
  if (d.reason === "maintenance" || d.in_maintenance) return "maintenance";
  if (d.up === false) return "down";
  if (d.up === true) return d.pending.length ? "pending" : "up";
  return "unknown";
}

function tileText(d, cls) {
  if (cls === "unknown") return w("waiting", "waiting for data");
  const state = T.states[d.state] || d.state;
  if (cls === "pending") {
    return `${state} · ${d.pending.map((p) => T.reasons[p] || p.replaceAll("_", " ")).join(", ")}?`;
  }
  const reason = d.reason === "ok" ? "" : (T.reasons[d.reason] || d.reason);
  return reason && reason !== state ? `${state} · ${reason}` : state;
}

function renderDevices(devices) {
  const main = document.getElementById("areas");
  const byArea = new Map();
  for (const d of devices) {
    const key = `${d.site} / ${d.area}`;
    if (!byArea.has(key)) byArea.set(key, []);
    byArea.get(key).push(d);
  }
  const counts = { up: 0, pending: 0, down: 0, maintenance: 0, unknown: 0 };
  const sections = [];
  for (const [area, list] of byArea) {
    const section = el("section", "area");
    section.append(el("h2", "", area));
    const tiles = el("div", "tiles");
    for (const d of list) {
      const cls = statusClass(d);
      counts[cls] += 1;
      const tile = el("div", `tile ${cls}`);
      tile.dataset.device = d.device;
      tile.dataset.site = d.site;  // a device is its site and id: gb-01 may be at two posts
      tile.dataset.status = cls;
      tile.title = d.name ? `${d.name} (${d.device})` : d.device;
      tile.append(el("div", "id", d.device), el("div", "kind", d.name || T.kinds[d.kind] || d.kind),
                  el("div", "state", tileText(d, cls)),
                  el("div", "for", d.for_phrase || ""));
      tiles.append(tile);
    }
    section.append(tiles);
    sections.push(section);
  }
  main.replaceChildren(...sections);
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    el("span", "n-up", fill("n_up", "%(n)s up", { n: counts.up + counts.pending })),
    document.createTextNode(" · "),
    el("span", "n-down", fill("n_down", "%(n)s down", { n: counts.down })), document.createTextNode(
      counts.maintenance ? ` · ${fill("n_maintenance", "%(n)s in maintenance", { n: counts.maintenance })}` : ""));
  const sites = [...new Set(devices.map((d) => d.site))];
  document.getElementById("site").textContent = sites.length === 1 ? `— ${sites[0]}` : "";
}

// One alert as a line: severity, what, how long; acknowledged by whom, or the button.
function alertItem(a) {
  const li = el("li");
  li.dataset.alert = a.alert_id;
  li.append(el("span", `sev ${a.severity}`, T.severities[a.severity] || a.severity),
            el("span", "what", `${a.summary_text || a.summary} — ${a.duration_phrase || a.duration_text}`));
  if (a.state === "acknowledged") {
    li.append(el("span", "acked", fill("acknowledged_by", "acknowledged by %(who)s", { who: a.acknowledged_by || "?" })));
  } else if (a.state === "firing") {
    const b = el("button", "ack", w("acknowledge", "Acknowledge"));
    b.addEventListener("click", () => acknowledge(a.alert_id));
    li.append(b);
  } else {
    li.append(el("span", "state", T.alert_states[a.state] || a.state));
  }
  return li;
}

function renderAlerts(alerts) {
  const box = document.getElementById("alerts");
  const list = document.getElementById("alert-list");
  box.hidden = alerts.length === 0;
  list.replaceChildren(...alerts.map((a) => {
    const li = alertItem(a);
    if (a.alert_id === linked()) li.classList.add("focus");
    return li;
  }));
}

// A notification's link opens the board at #alert=<id> (http.public_url): that alert on
// top, open or not, with its Acknowledge button while it fires.
function linked() {
  const m = /^#alert=([^&]+)$/.exec(location.hash);
  return m ? decodeURIComponent(m[1]) : null;
}

async function renderLinked(q) {
  const box = document.getElementById("focus");
  const id = linked();
  box.hidden = id === null;
  if (id === null) return;
  const list = document.getElementById("focus-list");
  const r = await fetch(`api/alerts/${encodeURIComponent(id)}?${q}`);
  if (r.status === 404) {
    list.replaceChildren(el("li", "", fill("linked_unknown", "This monitor knows no alert %(id)s", { id })));
    return;
  }
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  list.replaceChildren(alertItem(await r.json()));
}

function renderRelease(body) {
  const box = document.getElementById("release");
  box.hidden = !body.enabled;
  if (!body.enabled) return;
  const t = body.today;
  document.getElementById("rt-passages").textContent = String(t.passages);
  document.getElementById("rt-median").textContent = t.median_s_text || "–";
  document.getElementById("rt-p90").textContent = t.p90_s_text || "–";
  document.getElementById("rt-inside").textContent = String(t.inside);
}

function token() {
  let t = localStorage.getItem("monitorToken");
  if (!t) {
    t = prompt(w("ask_token", "API token (asked once, kept in this browser):"));
    if (t) localStorage.setItem("monitorToken", t.trim());
  }
  return t;
}

async function acknowledge(alertId) {
  const t = token();
  if (!t) return;
  const name = localStorage.getItem("monitorName") || prompt(w("ask_name", "Your name:"));
  if (name) localStorage.setItem("monitorName", name);
  const by = name || w("board_name", "status board");  // no name given: the board took it
  const r = await fetch(`api/alerts/${encodeURIComponent(alertId)}/ack`, {
    method: "POST", headers: { "Authorization": `Bearer ${t}`, "Content-Type": "application/json" },
    body: JSON.stringify({ by }),
  });
  if (r.status === 401 || r.status === 403) {
    localStorage.removeItem("monitorToken");
    alert((await r.json()).error);
  }
  refresh();
}

async function refresh() {
  const link = document.getElementById("link");
  try {
    const q = `lang=${encodeURIComponent(T.language)}`;
    const [d, a, p] = await Promise.all(
      [fetch(`api/devices?${q}`), fetch(`api/alerts?state=open&${q}`), fetch(`api/passages?${q}`)]);
    if (!d.ok || !a.ok || !p.ok) throw new Error(`HTTP ${d.status}/${a.status}/${p.status}`);
    renderDevices((await d.json()).devices);
    renderAlerts((await a.json()).alerts);
    renderRelease(await p.json());
    await renderLinked(q);
    link.classList.remove("lost");
    const updated = document.getElementById("updated");
    updated.textContent = fill("updated", "updated %(time)s", { time: clockText() });
    updated.title = "";
  } catch (e) {
    link.classList.add("lost");
    const updated = document.getElementById("updated");
    updated.textContent = w("unreachable", "monitor unreachable, trying again in a few seconds");
    updated.title = e.message;  // the browser's words (often English): for whoever debugs it
  }
}

async function loadTexts(chosen) {
  // the server's default language (config `language`) unless this browser chose one
  const r = await fetch(chosen ? `api/i18n?lang=${encodeURIComponent(chosen)}` : "api/i18n");
  if (!r.ok) return;
  T = await r.json();
  document.documentElement.lang = T.language;
  document.getElementById("lang").value = T.language;
  for (const [key, text] of Object.entries(T.words)) {
    const e = document.getElementById(`t-${key}`);
    if (e) e.textContent = text;
  }
  // words that are no element's text: a tooltip, what a screen reader says
  document.getElementById("link").title = w("link", "connection to the monitor");
  document.getElementById("lang").setAttribute("aria-label", w("language", "Language"));
  document.getElementById("focus-close").setAttribute("aria-label", w("close", "Close"));
}

function clockText() {
  // Aktau time (UTC+5), whatever the wall screen's own zone
  return new Date().toLocaleTimeString(T.language === "kk" ? "kk-KZ" : T.language,
    { timeZone: "Asia/Aqtau", hour12: false });
}

function tick() {
  document.getElementById("clock").textContent = clockText();
}

document.getElementById("token-button").addEventListener("click", () => {
  localStorage.removeItem("monitorToken");
  token();
});
document.getElementById("lang").addEventListener("change", async (ev) => {
  lang = ev.target.value;
  localStorage.setItem("monitorLang", lang);
  await loadTexts(lang);
  tick();
  refresh();
});
document.getElementById("focus-close").addEventListener("click", () => {
  history.replaceState(null, "", location.pathname + location.search);
  refresh();
});
window.addEventListener("hashchange", refresh);
loadTexts(lang).then(() => { tick(); refresh(); });
setInterval(tick, 1000);
setInterval(refresh, REFRESH_MS);
