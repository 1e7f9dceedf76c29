// A Sparkplug B edge node made of Eclipse Tahu's own JavaScript client (npm sparkplug-client)
// and encoder (sparkplug-payload), driven by the monitor's tests (tests/tahu_edge.py).
//
// What is Tahu's: the MQTT session (clean, NDEATH with bdSeq as its Will), the births (bdSeq
// and seq added by the client), the seq counter, the protobuf encoding of every datatype.
// What this script adds, as a gateway's application would: the metrics it publishes, the
// answer to a rebirth request, and, with "primaryHost", waiting for that host's STATE before
// its births and keeping data while the host is offline, to send it as historical metrics
// once the host is back (store and forward). Two test hooks stand in for the network:
// "hold"/"release" publish two messages in the reverse order (a clustered broker reorders
// across topics), "skip" loses one (a seq number used and never delivered).
//
// argv[2]: JSON {url, group, node, clientId, primaryHost?, devices?, nodeMetrics?}. stdin: one JSON command per line.
// stdout: one JSON event per line.
"use strict";

const sparkplug = require("sparkplug-client");
const Long = require("long");

const opts = JSON.parse(process.argv[2]);
const client = sparkplug.newClient({
  serverUrl: opts.url,
  username: "",
  password: "",
  groupId: opts.group,
  edgeNode: opts.node,
  clientId: opts.clientId || `tahu-${opts.node}`,
  version: "spBv1.0",
  keepalive: 5,
  mqttOptions: { reconnectPeriod: 0 },
});

let nodeMetrics = opts.nodeMetrics || [];
let devices = opts.devices || {}; // device id -> birth metrics
let born = false;
let hostOnline = opts.primaryHost ? null : true; // null: no STATE seen yet
let hostTimestamp = -1;
let stored = []; // [device, metrics] kept while the primary host is offline
let held = [];

function say(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function value(v) {
  // {"$long": "..."}: a 64-bit value beyond what a JS number holds exactly
  if (v !== null && typeof v === "object" && "$long" in v) {
    return Long.fromString(v.$long, true);
  }
  return v;
}

function metrics(list) {
  return list.map((m) => Object.assign({}, m, { value: value(m.value) }));
}

function births() {
  if (hostOnline !== true) {
    return false;
  }
  const node = [{ name: "Node Control/Rebirth", type: "Boolean", value: false }, ...metrics(nodeMetrics)];
  client.publishNodeBirth({ timestamp: Date.now(), metrics: node });
  for (const [device, list] of Object.entries(devices)) {
    client.publishDeviceBirth(device, { timestamp: Date.now(), metrics: metrics(list) });
  }
  born = true;
  say({ event: "births", seq: client.seq });
  return true;
}

function flush() {
  // store and forward: what was kept while the host was away, as historical metrics
  const kept = stored;
  stored = [];
  for (const [device, list] of kept) {
    const historical = list.map((m) => Object.assign({}, m, { isHistorical: true }));
    client.publishDeviceData(device, { timestamp: Date.now(), metrics: historical });
  }
  if (kept.length) {
    say({ event: "flushed", count: kept.length });
  }
}

function data(cmd) {
  const now = Date.now();
  const list = metrics(cmd.metrics).map((m) => Object.assign({ timestamp: now }, m));
  if (hostOnline !== true || !born) {
    stored.push([cmd.device, list]);
    return "stored";
  }
  const payload = { timestamp: now, metrics: list };
  if (cmd.hold) {
    // the seq is Tahu's, taken now; the message goes out on "release"
    client.addSeqNumber(payload);
    const topic = `spBv1.0/${opts.group}/${cmd.device ? "DDATA" : "NDATA"}/${opts.node}${cmd.device ? "/" + cmd.device : ""}`;
    held.push([topic, Buffer.from(client.encodePayload(payload))]);
    return "held";
  }
  if (cmd.device) {
    client.publishDeviceData(cmd.device, payload);
  } else {
    client.publishNodeData(payload);
  }
  return "sent";
}

function onState(topic, raw) {
  let state;
  try {
    state = JSON.parse(raw.toString());
  } catch (e) {
    return;
  }
  say({ event: "state", topic, online: state.online, timestamp: state.timestamp });
  if (topic !== `spBv1.0/STATE/${opts.primaryHost}` || typeof state.timestamp !== "number") {
    return;
  }
  if (state.timestamp < hostTimestamp) {
    return; // an older STATE than one seen (a stale Will): Sparkplug 3.0 says ignore it
  }
  hostTimestamp = state.timestamp;
  const was = hostOnline;
  hostOnline = state.online === true;
  if (hostOnline && was !== true) {
    if (births()) {
      flush();
    }
  }
}

// Tahu's client decodes every message as a Sparkplug payload; STATE is JSON: read it from the
// raw MQTT message, and let Tahu's decoder pass over it.
const decode = client.decodePayload.bind(client);
client.decodePayload = (message) => {
  try {
    return decode(message);
  } catch (e) {
    return {};
  }
};

client.on("connect", () => {
  say({ event: "connect" });
  client.client.on("message", (topic, raw, packet) => {
    if (topic.startsWith("spBv1.0/STATE/")) {
      onState(topic, raw);
    } else if (topic.includes("/NCMD/")) {
      const payload = decode(raw);
      say({
        event: "ncmd",
        qos: packet.qos,
        retain: packet.retain,
        timestamp: payload.timestamp === undefined ? null : Number(payload.timestamp),
        seq: payload.seq === undefined ? null : payload.seq,
        metrics: (payload.metrics || []).map((m) => ({ name: m.name, type: m.type, value: m.value })),
      });
    }
  });
  if (opts.primaryHost) {
    client.client.subscribe(`spBv1.0/STATE/${opts.primaryHost}`, { qos: 1 });
  }
});

client.on("birth", () => {
  born = false;
  births();
});

client.on("ncmd", (payload) => {
  const rebirth = (payload.metrics || []).some((m) => m.name === "Node Control/Rebirth" && m.value === true);
  if (rebirth) {
    born = false;
    births();
  }
});

client.on("error", (e) => say({ event: "error", error: String(e) }));
client.on("close", () => say({ event: "close" }));

let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk.toString();
  let i;
  while ((i = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 1);
    if (line.trim()) {
      run(JSON.parse(line));
    }
  }
});
process.stdin.on("end", () => process.exit(0));

function run(cmd) {
  let result = "ok";
  switch (cmd.cmd) {
    case "define": // what the births carry, now and after every rebirth request
      nodeMetrics = cmd.node || [];
      devices = cmd.devices || {};
      break;
    case "birth":
      result = births() ? "sent" : "waiting";
      break;
    case "data":
      result = data(cmd);
      break;
    case "release":
      for (const [topic, body] of held.reverse()) {
        client.client.publish(topic, body);
      }
      held = [];
      break;
    case "skip":
      client.incrementSeqNum(); // a message the broker never delivered
      break;
    case "ddeath":
      client.publishDeviceDeath(cmd.device, { timestamp: Date.now() });
      break;
    case "stop": // a clean stop: Tahu publishes the NDEATH itself, then DISCONNECT
      client.publishDeath = true;
      client.stop();
      break;
    default:
      result = `unknown command ${cmd.cmd}`;
  }
  // after the client's writes of this command: the test knows they left
  setImmediate(() => say({ event: "done", cmd: cmd.cmd, id: cmd.id, result }));
}
