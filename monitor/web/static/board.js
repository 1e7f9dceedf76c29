// The status board: polls the monitor's API and redraws in place (no full reloads).
"use strict";

const REFRESH_MS = 3000;
const KIND = {
  xray_scanner: "X-ray scanner", radiation_portal: "Radiation portal", gate_barrier: "Gate barrier",
  anpr_camera: "ANPR camera", weighbridge: "Weighbridge",
};
const REASON = { ok: "", no_data: "no data", offline: "offline", fault: "fault", maintenance: "maintenance" };

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
  if (cls === "unknown") return "waiting for data";
  if (cls === "pending") return `${d.state} · ${d.pending.join(", ").replaceAll("_", " ")}?`;
  const reason = d.reason in REASON ? REASON[d.reason] : d.reason;
  return reason && reason !== d.state ? `${d.state} · ${reason}` : d.state;
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
      tile.dataset.status = cls;
      tile.title = d.name ? `${d.name} (${d.device})` : d.device;
      tile.append(el("div", "id", d.device), el("div", "kind", d.name || KIND[d.kind] || d.kind),
                  el("div", "state", tileText(d, cls)), el("div", "for", d.for_text ? `for ${d.for_text}` : ""));
      tiles.append(tile);
    }
    section.append(tiles);
    sections.push(section);
  }
  main.replaceChildren(...sections);
  const summary = document.getElementById("summary");
  summary.replaceChildren(
    el("span", "n-up", `${counts.up + counts.pending} up`), document.createTextNode(" · "),
    el("span", "n-down", `${counts.down} down`), document.createTextNode(
      counts.maintenance ? ` · ${counts.maintenance} in maintenance` : ""));
  const sites = [...new Set(devices.map((d) => d.site))];
  document.getElementById("site").textContent = sites.length === 1 ? `— ${sites[0]}` : "";
}

function renderAlerts(alerts) {
  const box = document.getElementById("alerts");
  const list = document.getElementById("alert-list");
  box.hidden = alerts.length === 0;
  list.replaceChildren(...alerts.map((a) => {
    const li = el("li");
    li.dataset.alert = a.alert_id;
    li.append(el("span", `sev ${a.severity}`, a.severity),
              el("span", "what", `${a.summary} — since ${a.duration_text}`));
    if (a.state === "acknowledged") {
      li.append(el("span", "acked", `acknowledged by ${a.acknowledged_by || "?"}`));
    } else {
      const b = el("button", "ack", "Acknowledge");
      b.addEventListener("click", () => acknowledge(a.alert_id));
      li.append(b);
    }
    return li;
  }));
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
    t = prompt("API token (asked once, kept in this browser):");
    if (t) localStorage.setItem("monitorToken", t.trim());
  }
  return t;
}

async function acknowledge(alertId) {
  const t = token();
  if (!t) return;
  const by = localStorage.getItem("monitorName") || prompt("Your name:") || "status board";
  localStorage.setItem("monitorName", by);
  const r = await fetch(`/api/alerts/${encodeURIComponent(alertId)}/ack`, {
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
    const [d, a, p] = await Promise.all(
      [fetch("/api/devices"), fetch("/api/alerts?state=open"), fetch("/api/passages")]);
    if (!d.ok || !a.ok || !p.ok) throw new Error(`HTTP ${d.status}/${a.status}/${p.status}`);
    renderDevices((await d.json()).devices);
    renderAlerts((await a.json()).alerts);
    renderRelease(await p.json());
    link.classList.remove("lost");
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    link.classList.add("lost");
    document.getElementById("updated").textContent = `monitor unreachable (${e.message}) — retrying`;
  }
}

function tick() {
  document.getElementById("clock").textContent = new Date().toLocaleTimeString();
}

document.getElementById("token-button").addEventListener("click", () => {
  localStorage.removeItem("monitorToken");
  token();
});
tick();
setInterval(tick, 1000);
refresh();
setInterval(refresh, REFRESH_MS);
