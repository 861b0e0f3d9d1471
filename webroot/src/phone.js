// Phone: the everyday page. Account settings remembered in localStorage, register/unregister,
// dial a number or URI, incoming calls ring (answer/reject), DTMF, hold, mute, call timer and
// live call quality from getStats. Errors show the SIP status code and reason.
import {
  $, Line, buildKeypad, callStateText, defaultServer, formatDuration, hangupOnPageHide, makeLogger, qbool, qp,
} from "./common.js";

const STORE = "webrtc-phone.settings";
const FIELDS = { server: "server", user: "user", password: "password", displayName: "display-name" };
const remember = qbool("remember", true);
const log = makeLogger($("log"));
const remoteAudio = $("remote-audio");
let line = null;
let lastStats = null;

function loadSettings() {
  let saved = {};
  try {
    saved = JSON.parse(localStorage.getItem(STORE) || "{}") || {};
  } catch {
    saved = {};
  }
  $("server").value = qp("server", saved.server || defaultServer());
  $("user").value = qp("user", saved.user || "");
  $("password").value = qp("password", saved.password || "");
  $("display-name").value = qp("name", saved.displayName || "");
  $("target").value = qp("target", "");
}

function saveSettings() {
  if (!remember) return;
  const s = {};
  for (const [k, id] of Object.entries(FIELDS)) s[k] = $(id).value;
  try {
    localStorage.setItem(STORE, JSON.stringify(s));
  } catch {
    /* storage disabled: nothing to remember */
  }
}

function settings() {
  return {
    server: $("server").value.trim(),
    user: $("user").value.trim(),
    password: $("password").value,
    displayName: $("display-name").value.trim(),
  };
}

function newLine() {
  const s = settings();
  const l = new Line({
    name: "phone",
    ...s,
    domain: qp("domain") || undefined,
    processing: qbool("aec", true), // a real phone keeps echo cancellation on
    logLevel: qp("log", "warn"),
    dtmf: qp("dtmf", "info"),
    remoteAudio,
  });
  l.addEventListener("log", log);
  l.addEventListener("change", onChange);
  return l;
}

async function register() {
  localError = "";
  const s = settings();
  if (!s.server || !s.user) {
    showLocalError(!s.server ? "Enter the server's WebSocket URL." : "Enter your username.", "account");
    return;
  }
  saveSettings();
  if (line && !line.session) {
    await line.disconnect();
    line = null;
  }
  if (!line) line = newLine();
  render();
  await line.register().catch(() => {});
  render();
}

async function unregister() {
  if (!line) return;
  await line.unregister();
  if (!line.session) {
    await line.disconnect();
    line = null;
  }
  render();
}

async function call() {
  localError = "";
  const target = $("target").value.trim();
  if (!target) {
    showLocalError("Enter a number or SIP URI to call.");
    $("target").focus();
    return;
  }
  if (line && !line.su) line = null; // not connected: use the fields as they are now
  if (!line) {
    const s = settings();
    if (!s.server) return showLocalError("Enter the server's WebSocket URL.", "account");
    if (!s.user) $("user").value = "anonymous";
    line = newLine();
  }
  await line.call(target).catch(() => {});
}

let localError = "";
let localErrorWhere = "call";
function showLocalError(text, where = "call") {
  localError = text;
  localErrorWhere = where;
  if (line?.state.lastError) line.clearError(); // re-renders
  else render();
}

// Ringtone: 440 + 480 Hz, 2 s on, 4 s off (WebAudio, no sound file).
let ring = null;
function startRinging() {
  if (ring || !qbool("ringtone", true)) return;
  try {
    const ac = new AudioContext();
    const gain = ac.createGain();
    gain.gain.value = 0;
    gain.connect(ac.destination);
    for (const f of [440, 480]) {
      const o = ac.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      o.start();
    }
    const t0 = ac.currentTime;
    for (let i = 0; i < 20; i++) {
      gain.gain.setValueAtTime(0.08, t0 + i * 6);
      gain.gain.setValueAtTime(0, t0 + i * 6 + 2);
    }
    ring = ac;
  } catch {
    ring = null;
  }
}
function stopRinging() {
  if (ring) ring.close().catch(() => {});
  ring = null;
}

let prevCallState = "idle";
function onChange() {
  const st = line.state;
  if (st.callState === "incoming" && prevCallState !== "incoming") {
    startRinging();
    document.title = "Incoming call · webrtc-phone";
    render();
    $("answer").focus();
    if (qbool("autoanswer")) setTimeout(() => line?.answer(), Number(qp("autoanswer_delay", "0")) || 0);
  } else if (st.callState !== "incoming" && prevCallState === "incoming") {
    stopRinging();
    document.title = "Phone · webrtc-phone";
  }
  if (st.callState === "active" && prevCallState !== "active") lastStats = null;
  prevCallState = st.callState;
  render();
}

function render() {
  const st = line?.state;
  const inCall = !!line?.session;
  const active = st?.callState === "active";
  const incoming = st?.callState === "incoming";
  const rs = $("reg-status");
  const regErr = st?.lastError && /Registration|Connection/.test(st.lastError.where) ? st.lastError : null;
  rs.textContent = st?.registered
    ? `Registered as ${st.aor.replace(/^sip:/, "")}`
    : st?.registering
      ? "Registering…"
      : regErr
        ? regErr.code ? `Failed: ${regErr.code} ${regErr.reason || ""}` : "Failed"
        : st?.connected ? "Connected, not registered" : "Not registered";
  rs.dataset.state = st?.registered ? "ok" : st?.registering ? "busy" : regErr ? "error" : "";
  $("register").disabled = !!st?.registered || !!st?.registering || inCall;
  $("unregister").disabled = !st?.registered && !st?.registering && !line?.su;
  for (const id of Object.values(FIELDS)) $(id).disabled = !!st?.registered || !!st?.registering;
  $("call").disabled = inCall;
  $("hangup").disabled = !inCall || incoming;
  $("hold").disabled = !active || !!st?.holdPending;
  $("mute").disabled = !active;
  $("hold").setAttribute("aria-pressed", String(!!st?.held));
  $("hold").textContent = st?.held ? "Resume" : "Hold";
  $("mute").setAttribute("aria-pressed", String(!!st?.muted));
  $("mute").textContent = st?.muted ? "Unmute" : "Mute";
  $("incoming").hidden = !incoming;
  $("incoming-caller").textContent = incoming ? `Incoming call from ${st.peer}` : "";
  $("call-status").textContent = st ? callStateText(st) : "No call";
  const err = st?.lastError;
  $("reg-error").textContent = (regErr ? regErr.text : "") || (localErrorWhere === "account" ? localError : "");
  $("error").textContent = (err && !regErr ? err.text : "") || (localErrorWhere === "call" ? localError : "");
  $("dtmf-sent").textContent = st?.dtmfSent ?? "";
  $("dtmf-line").hidden = !st?.dtmfSent;
  renderQuality();
  tick();
}

function renderQuality() {
  const s = line?.state.callState === "active" ? lastStats : null;
  $("q-rtt").textContent = s?.roundTripMs != null ? `${s.roundTripMs} ms` : "–";
  $("q-loss").textContent = s ? `${s.lossPercent.toFixed(1)} %` : "–";
  $("q-jitter").textContent = s?.jitterMs != null ? `${s.jitterMs} ms` : "–";
  $("q-codec").textContent = s?.codec ? s.codec.split("/")[0] : "–";
  $("q-codec").title = s?.codec || "";
  $("q-packets").textContent = s ? `${s.packetsReceived} / ${s.packetsSent}` : "–";
}

function tick() {
  const st = line?.state;
  $("call-timer").textContent = st?.callState === "active" && st.answeredAt ? formatDuration(Date.now() - st.answeredAt) : "00:00";
}
setInterval(tick, 500);
setInterval(async () => {
  if (line?.state.callState !== "active") return;
  try {
    lastStats = await line.stats();
  } catch {
    lastStats = null;
  }
  renderQuality();
}, 1000);

buildKeypad($("keypad"), (k) => {
  if (line?.state.callState === "active") line.dtmf(k);
  else if (!line?.session) {
    $("target").value += k;
  }
});
$("account-form").addEventListener("submit", (e) => {
  e.preventDefault();
  register();
});
$("unregister").addEventListener("click", unregister);
$("forget").addEventListener("click", () => {
  try {
    localStorage.removeItem(STORE);
  } catch {
    /* nothing saved */
  }
  log({ detail: { msg: "saved settings removed from this browser", level: "info", name: "phone" } });
});
$("call").addEventListener("click", call);
$("target").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !$("call").disabled) call();
});
$("hangup").addEventListener("click", () => line?.hangup());
$("answer").addEventListener("click", () => line?.answer());
$("reject").addEventListener("click", () => line?.reject());
$("hold").addEventListener("click", () => line?.hold());
$("mute").addEventListener("click", () => line?.mute());
hangupOnPageHide(() => [line]);

loadSettings();
render();

// Test hooks (see README.md).
window.__phone = {
  get line() { return line; },
  get state() { return line ? line.snapshot() : null; },
  get connected() { return !!line?.state.connected; },
  get registered() { return !!line?.state.registered; },
  get callState() { return line?.state.callState ?? "idle"; },
  get lastError() { return line?.state.lastError ?? (localError ? { where: "Form", message: localError, text: localError } : null); },
  get lastStats() { return lastStats; },
  remoteAudio,
  register, unregister,
  call: (target) => {
    if (target) $("target").value = target;
    return call();
  },
  answer: () => line?.answer(),
  reject: (code) => line?.reject(code),
  hangup: () => line?.hangup(),
  hold: (on) => line?.hold(on),
  mute: (on) => line?.mute(on),
  dtmf: (d) => line?.dtmf(d),
  stats: () => (line ? line.stats() : Promise.resolve(null)),
  tone: (ms) => (line ? line.tone(ms) : Promise.resolve({ hz: 0, db: null, rms: 0 })),
};
window.__toneFrequency = async (ms = 1500) => (await window.__phone.tone(ms)).hz;

if (qbool("autostart") && $("user").value.trim()) {
  register().then(() => {
    if (qbool("autocall") && $("target").value.trim() && line) {
      const t0 = Date.now();
      const wait = () => {
        if (line?.state.registered) call();
        else if (Date.now() - t0 < 5000 && !line?.state.lastError) setTimeout(wait, 100);
      };
      wait();
    }
  });
}
