// Demo 1: connect (no registration needed) and place an audio call, `echo` by default.
import {
  $, Line, buildKeypad, callStateText, defaultServer, formatDuration, hangupOnPageHide, makeLogger, qbool, qp,
} from "./common.js";

$("server").value = qp("server", defaultServer());
$("target").value = qp("target", "echo");

let line = null;
const log = makeLogger($("log"));
const remoteAudio = $("remote-audio");

function newLine() {
  const l = new Line({
    name: "demo1",
    server: $("server").value.trim(),
    user: qp("user", "demo1"),
    password: qp("password", ""),
    displayName: qp("name", "Demo 1"),
    domain: qp("domain") || undefined,
    processing: qbool("aec", false), // an echo test needs the echo canceller off
    logLevel: qp("log", "warn"),
    dtmf: qp("dtmf", "info"),
    remoteAudio,
  });
  l.addEventListener("log", log);
  l.addEventListener("change", render);
  return l;
}

async function connect() {
  if (line && !line.su) line = null; // a failed connect: start afresh with the current field
  if (!line) line = newLine();
  render();
  await line.connect().catch(() => {});
  render();
}

async function disconnect() {
  if (!line) return;
  const l = line;
  line = null; // the next connect reads the Server field again
  await l.disconnect();
  render();
}

async function call() {
  if (line && !line.su) line = null;
  if (!line) line = newLine();
  const target = $("target").value.trim();
  if (!target) {
    line.fail("Call", { message: "enter a destination" });
    return;
  }
  await line.call(target).catch(() => {});
}

function render() {
  const st = line?.state;
  const connected = !!st?.connected;
  const inCall = !!line?.session;
  const active = st?.callState === "active";
  const cs = $("conn-status");
  cs.textContent = connected ? "Connected" : st?.lastError?.where === "Connection" ? "Connection failed" : "Not connected";
  cs.dataset.state = connected ? "ok" : st?.lastError?.where === "Connection" ? "error" : "";
  $("connect").disabled = connected;
  $("disconnect").disabled = !line?.su;
  $("server").disabled = !!line?.su;
  $("call").disabled = inCall;
  $("hangup").disabled = !inCall;
  $("hold").disabled = !active || !!st?.holdPending;
  $("mute").disabled = !active;
  $("hold").setAttribute("aria-pressed", String(!!st?.held));
  $("hold").textContent = st?.held ? "Resume" : "Hold";
  $("mute").setAttribute("aria-pressed", String(!!st?.muted));
  $("mute").textContent = st?.muted ? "Unmute" : "Mute";
  for (const k of document.querySelectorAll("#keypad .key")) k.disabled = !active;
  $("call-status").textContent = st ? callStateText(st) : "No call";
  $("error").textContent = st?.lastError?.text ?? "";
  $("dtmf-sent").textContent = st?.dtmfSent ?? "";
  $("dtmf-line").hidden = !st?.dtmfSent;
  tick();
}

function tick() {
  const st = line?.state;
  $("call-timer").textContent = st?.callState === "active" && st.answeredAt ? formatDuration(Date.now() - st.answeredAt) : "00:00";
}
setInterval(tick, 500);

buildKeypad($("keypad"), (k) => line?.dtmf(k));
$("connect").addEventListener("click", connect);
$("disconnect").addEventListener("click", disconnect);
$("call").addEventListener("click", call);
$("target").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !$("call").disabled) call();
});
$("hangup").addEventListener("click", () => line?.hangup());
$("hold").addEventListener("click", () => line?.hold());
$("mute").addEventListener("click", () => line?.mute());
hangupOnPageHide(() => [line]);
render();

// Test hooks (see README.md).
window.__demo1 = {
  get line() { return line; },
  get state() { return line ? line.snapshot() : null; },
  get connected() { return !!line?.state.connected; },
  get registered() { return !!line?.state.registered; },
  get callState() { return line?.state.callState ?? "idle"; },
  get lastError() { return line?.state.lastError ?? null; },
  remoteAudio,
  connect, disconnect, call,
  hangup: () => line?.hangup(),
  hold: (on) => line?.hold(on),
  mute: (on) => line?.mute(on),
  dtmf: (d) => line?.dtmf(d),
  stats: () => (line ? line.stats() : Promise.resolve(null)),
  tone: (ms) => (line ? line.tone(ms) : Promise.resolve({ hz: 0, db: null, rms: 0 })),
};
window.__toneFrequency = async (ms = 1500) => (await window.__demo1.tone(ms)).hz;

if (qbool("autostart")) connect().then(() => line?.state.connected && call());
