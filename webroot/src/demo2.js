// Demo 2: two SIP users in one page. Each registers; Alice calls Bob with audio and video.
import {
  $, Line, callStateText, defaultServer, formatDuration, hangupOnPageHide, makeLogger, qbool, qp,
} from "./common.js";

$("server").value = qp("server", defaultServer());
const log = makeLogger($("log"));
const sides = {};

function panelHtml(p, title, other) {
  return `
  <h2 id="${p}-heading">${title}</h2>
  <div class="row">
    <div class="field"><label for="${p}-user">Username</label>
      <input id="${p}-user" type="text" autocomplete="off" spellcheck="false"></div>
    <div class="field"><label for="${p}-password">Password</label>
      <input id="${p}-password" type="password" autocomplete="off"></div>
  </div>
  <div class="buttons">
    <button id="${p}-register" type="button" class="primary">Register</button>
    <button id="${p}-unregister" type="button" disabled>Unregister</button>
    <span id="${p}-reg-status" class="status" role="status">Not registered</span>
  </div>
  <div class="row">
    <div class="field"><label for="${p}-target">Call</label>
      <input id="${p}-target" type="text" autocomplete="off" spellcheck="false"></div>
    <div class="buttons"><button id="${p}-call" type="button" class="call">Call ${other}</button></div>
  </div>
  <div class="incoming" id="${p}-incoming" hidden>
    <p id="${p}-incoming-caller">Incoming call</p>
    <div class="buttons">
      <button id="${p}-answer" type="button" class="call">Answer</button>
      <button id="${p}-reject" type="button" class="danger">Reject</button>
    </div>
  </div>
  <div class="callbar">
    <span id="${p}-call-status" class="callstate" role="status" aria-live="polite">No call</span>
    <span id="${p}-call-timer" class="timer" aria-label="${title} call duration">00:00</span>
  </div>
  <div class="buttons">
    <button id="${p}-hangup" type="button" class="danger" disabled>Hang up</button>
    <button id="${p}-hold" type="button" aria-pressed="false" disabled>Hold</button>
    <button id="${p}-mute" type="button" aria-pressed="false" disabled>Mute</button>
    <label style="display:flex;align-items:center;gap:.3rem;font-weight:500"><input id="${p}-autoanswer" type="checkbox"> Answer automatically</label>
  </div>
  <div id="${p}-error" class="error" role="alert"></div>
  <div class="videos">
    <figure><video id="${p}-remote-video" autoplay playsinline></video><figcaption>${other} (remote)</figcaption></figure>
    <figure><video id="${p}-local-video" autoplay playsinline muted></video><figcaption>${title} (you)</figcaption></figure>
  </div>`;
}

function setup(p, title, other, defUser, defOther) {
  $(p).innerHTML = panelHtml(p, title, other);
  $(`${p}-user`).value = qp(`${p}_user`, defUser);
  $(`${p}-password`).value = qp(`${p}_password`, qp(`${p}_user`, defUser));
  $(`${p}-target`).value = qp(`${p}_target`, qp(`${defOther}_user`, defOther));
  $(`${p}-autoanswer`).checked = qbool(`${p}_autoanswer`, qbool("autoanswer", false));
  const side = { p, title, line: null };
  sides[p] = side;

  side.ensure = () => {
    if (side.line) return side.line;
    const l = new Line({
      name: p,
      server: $("server").value.trim(),
      user: $(`${p}-user`).value.trim(),
      password: $(`${p}-password`).value,
      displayName: title,
      domain: qp("domain") || undefined,
      video: true,
      processing: qbool("aec", false),
      logLevel: qp("log", "warn"),
      dtmf: qp("dtmf", "info"),
      remoteVideo: $(`${p}-remote-video`),
      localVideo: $(`${p}-local-video`),
    });
    l.addEventListener("log", log);
    l.addEventListener("change", () => {
      if (l.state.callState === "incoming" && $(`${p}-autoanswer`).checked && !side.autoAnswered) {
        side.autoAnswered = true;
        l.answer();
      }
      if (l.state.callState !== "incoming") side.autoAnswered = false;
      render(side);
    });
    side.line = l;
    return l;
  };
  side.register = async () => {
    // Not registered and not in a call: start afresh with what the fields say now.
    if (side.line && !side.line.state.registered && !side.line.session) {
      const old = side.line;
      side.line = null;
      await old.disconnect();
    }
    const l = side.ensure();
    if (!$(`${p}-user`).value.trim()) return l.fail("Registration", { message: "enter a username" });
    await l.register().catch(() => {});
    render(side);
  };
  side.unregister = async () => {
    if (!side.line) return;
    await side.line.unregister();
    await side.line.disconnect();
    side.line = null;
    render(side);
  };
  side.call = async (target = $(`${p}-target`).value.trim()) => {
    const l = side.ensure();
    if (!target) return l.fail("Call", { message: "enter who to call" });
    await l.call(target).catch(() => {});
  };

  $(`${p}-register`).addEventListener("click", side.register);
  $(`${p}-unregister`).addEventListener("click", side.unregister);
  $(`${p}-call`).addEventListener("click", () => side.call());
  $(`${p}-answer`).addEventListener("click", () => side.line?.answer());
  $(`${p}-reject`).addEventListener("click", () => side.line?.reject());
  $(`${p}-hangup`).addEventListener("click", () => side.line?.hangup());
  $(`${p}-hold`).addEventListener("click", () => side.line?.hold());
  $(`${p}-mute`).addEventListener("click", () => side.line?.mute());
  render(side);
  return side;
}

function render(side) {
  const { p } = side;
  const st = side.line?.state;
  const inCall = !!side.line?.session;
  const active = st?.callState === "active";
  const incoming = st?.callState === "incoming";
  const rs = $(`${p}-reg-status`);
  const regErr = st?.lastError && /Registration|Connection/.test(st.lastError.where);
  rs.textContent = st?.registered ? "Registered" : st?.registering ? "Registering…" : regErr ? "Failed" : "Not registered";
  rs.dataset.state = st?.registered ? "ok" : st?.registering ? "busy" : regErr ? "error" : "";
  $(`${p}-register`).disabled = !!st?.registered || !!st?.registering;
  $(`${p}-unregister`).disabled = !side.line;
  $(`${p}-user`).disabled = $(`${p}-password`).disabled = !!st?.registered || !!st?.registering;
  $(`${p}-call`).disabled = inCall;
  $(`${p}-incoming`).hidden = !incoming;
  $(`${p}-incoming-caller`).textContent = incoming ? `Incoming call from ${st.peer}` : "";
  $(`${p}-hangup`).disabled = !inCall;
  $(`${p}-hold`).disabled = !active || !!st?.holdPending;
  $(`${p}-mute`).disabled = !active;
  $(`${p}-hold`).setAttribute("aria-pressed", String(!!st?.held));
  $(`${p}-hold`).textContent = st?.held ? "Resume" : "Hold";
  $(`${p}-mute`).setAttribute("aria-pressed", String(!!st?.muted));
  $(`${p}-mute`).textContent = st?.muted ? "Unmute" : "Mute";
  $(`${p}-call-status`).textContent = st ? callStateText(st) : "No call";
  $(`${p}-error`).textContent = st?.lastError?.text ?? "";
  tick();
}

function tick() {
  for (const { p, line } of Object.values(sides)) {
    const st = line?.state;
    $(`${p}-call-timer`).textContent = st?.callState === "active" && st.answeredAt ? formatDuration(Date.now() - st.answeredAt) : "00:00";
  }
}
setInterval(tick, 500);

const alice = setup("alice", "Alice", "Bob", "alice", "bob");
const bob = setup("bob", "Bob", "Alice", "bob", "alice");
hangupOnPageHide(() => [alice.line, bob.line]);

/** Registers both, then Alice calls Bob (who answers automatically). */
async function start() {
  $("bob-autoanswer").checked = true;
  await Promise.all([alice.register(), bob.register()]);
  const ok = () => alice.line?.state.registered && bob.line?.state.registered;
  for (let i = 0; i < 50 && !ok(); i++) await new Promise((r) => setTimeout(r, 100));
  if (!ok()) return;
  await alice.call();
}
$("start").addEventListener("click", start);

// Test hooks (see README.md).
function hooks(side) {
  return {
    get line() { return side.line; },
    get state() { return side.line ? side.line.snapshot() : null; },
    get registered() { return !!side.line?.state.registered; },
    get callState() { return side.line?.state.callState ?? "idle"; },
    get lastError() { return side.line?.state.lastError ?? null; },
    remoteVideo: $(`${side.p}-remote-video`),
    localVideo: $(`${side.p}-local-video`),
    remoteAudio: $(`${side.p}-remote-video`), // the remote <video> plays the audio too
    register: side.register,
    unregister: side.unregister,
    call: side.call,
    answer: () => side.line?.answer(),
    reject: () => side.line?.reject(),
    hangup: () => side.line?.hangup(),
    hold: (on) => side.line?.hold(on),
    mute: (on) => side.line?.mute(on),
    stats: () => (side.line ? side.line.stats() : Promise.resolve(null)),
    tone: (ms) => (side.line ? side.line.tone(ms) : Promise.resolve({ hz: 0, db: null, rms: 0 })),
  };
}
window.__demo2 = { alice: hooks(alice), bob: hooks(bob), start };
window.__toneFrequency = async (ms = 1500, who = "bob") => (await window.__demo2[who].tone(ms)).hz;

if (qbool("autostart")) start();
