// Shared code of the phone pages: one `Line` (a SIP.js SimpleUser with observable state),
// query-parameter helpers, getStats summary, tone detection, DTMF keypad and an event log.
// Nothing here talks to anything but the configured WebSocket: no STUN, no CDN.
import { SimpleUser } from "sip.js/lib/platform/web/index.js";

export const params = new URLSearchParams(location.search);

/** Query parameter `name`, or `fallback` when absent. */
export function qp(name, fallback = "") {
  const v = params.get(name);
  return v === null ? fallback : v;
}

/** Boolean query parameter: 1/true/yes/on are true, 0/false/no/off are false. */
export function qbool(name, fallback = false) {
  const v = params.get(name);
  if (v === null) return fallback;
  return /^(1|true|yes|on|)$/i.test(v.trim());
}

/** The gateway's SIP WebSocket at the page's own origin (one certificate covers both). */
export function defaultServer() {
  return location.host ? `wss://${location.host}/ws` : "wss://localhost/ws";
}

/** SIP domain used for AORs and bare targets: the page's host name. */
export function defaultDomain() {
  return location.hostname || "localhost";
}

export const $ = (id) => document.getElementById(id);

/** "echo" -> sip:echo@domain, "bob@x" -> sip:bob@x, "sip:..."/"sips:..." unchanged. */
export function toUri(target, domain = defaultDomain()) {
  const t = String(target).trim().replace(/\s+/g, "");
  if (/^sips?:/i.test(t)) return t;
  if (/^tel:/i.test(t)) return `sip:${t.slice(4)}@${domain}`;
  if (t.includes("@")) return `sip:${t}`;
  return `sip:${t}@${domain}`;
}

/** "alice" or "alice@example.net" -> { user, domain }. */
export function splitUser(user, domain = defaultDomain()) {
  const u = String(user).trim().replace(/^sips?:/i, "");
  const at = u.indexOf("@");
  return at < 0 ? { user: u, domain } : { user: u.slice(0, at), domain: u.slice(at + 1) };
}

export function formatDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

const errText = (e) => (e && e.message ? e.message : String(e));

/**
 * One SIP identity on one WebSocket. `state` is plain data (JSON-safe) for the UI and for
 * tests; every change fires a "change" event. Call states:
 * idle -> calling -> ringing (18x received) -> active -> ended, or idle -> incoming -> active -> ended.
 */
export class Line extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.server      wss:// URL
   * @param {string} o.user        user name, optionally user@domain
   * @param {string} [o.password]  digest password
   * @param {string} [o.displayName]
   * @param {string} [o.domain]    SIP domain (default: page host name)
   * @param {boolean} [o.video]    send and receive video
   * @param {boolean} [o.processing] echo cancellation / noise suppression / AGC on the microphone
   * @param {HTMLMediaElement} [o.remoteAudio]
   * @param {HTMLVideoElement} [o.remoteVideo] (plays audio too when given)
   * @param {HTMLVideoElement} [o.localVideo]
   * @param {string} [o.logLevel] SIP.js log level: error | warn | log | debug
   * @param {string} [o.name]     label for the event log
   */
  constructor(o) {
    super();
    this.o = { domain: defaultDomain(), processing: false, logLevel: "warn", ...o };
    this.su = null;
    this.wantRegistered = false;
    this.localHangup = false;
    this.state = {
      server: this.o.server,
      aor: "",
      connected: false,
      registered: false,
      registering: false,
      callState: "idle",
      direction: null, // "outgoing" | "incoming"
      peer: null, // remote party as text
      held: false,
      holdPending: false, // a hold/resume re-INVITE is waiting for its answer
      muted: false,
      callStartedAt: null, // ms epoch, when the call was placed or received
      answeredAt: null, // ms epoch, when it became active
      lastCall: null, // { endedBy, code, reason, durationMs }
      lastError: null, // { where, code, reason, message, at }
      dtmfSent: "",
      dtmfReceived: "",
      calls: 0,
    };
  }

  get session() {
    return this.su?.session;
  }

  get peerConnection() {
    return this.su?.session?.sessionDescriptionHandler?.peerConnection ?? null;
  }

  log(msg, level = "info") {
    this.dispatchEvent(new CustomEvent("log", { detail: { msg, level, name: this.o.name } }));
  }

  set(patch) {
    Object.assign(this.state, patch);
    this.dispatchEvent(new Event("change"));
  }

  /** Records an error for the UI; `code`/`reason` from a SIP response when there is one. */
  fail(where, { code = null, reason = null, message = "" } = {}) {
    const text = code ? `${code} ${reason || ""}`.trim() : message;
    const lastError = { where, code, reason, message: message || text, text: `${where}: ${text}`, at: Date.now() };
    this.log(lastError.text, "error");
    this.set({ lastError });
  }

  clearError() {
    this.set({ lastError: null });
  }

  create() {
    if (this.su) return this.su;
    const { user, domain } = splitUser(this.o.user, this.o.domain);
    const aor = `sip:${user}@${domain}`;
    const audio = this.o.processing
      ? true
      : { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
    const media = {
      constraints: { audio, video: !!this.o.video },
      remote: this.o.remoteVideo ? { video: this.o.remoteVideo } : { audio: this.o.remoteAudio },
    };
    if (this.o.localVideo) media.local = { video: this.o.localVideo };
    const su = new SimpleUser(this.o.server, {
      aor,
      media,
      // DTMF as SIP INFO (SimpleUser's default), or as RFC 4733 telephone-events in the audio
      // stream (`dtmf=rfc4733`).
      sendDTMFUsingSessionDescriptionHandler: this.o.dtmf === "rfc4733",
      userAgentOptions: {
        authorizationUsername: user,
        authorizationPassword: this.o.password || "",
        displayName: this.o.displayName || undefined,
        logLevel: this.o.logLevel,
        sessionDescriptionHandlerFactoryOptions: {
          // SIP.js defaults to a public STUN server; the gateway is ICE-lite on a known address.
          peerConnectionConfiguration: { iceServers: [] },
          iceGatheringTimeout: 500,
        },
      },
      delegate: {
        onServerConnect: () => {
          this.log(`connected to ${this.o.server}`);
          this.set({ connected: true });
        },
        onServerDisconnect: (error) => {
          this.set({ connected: false, registered: false, registering: false });
          if (error) this.fail("Connection", { message: `lost connection to ${this.o.server}: ${errText(error)}` });
          else this.log("disconnected");
        },
        onRegistered: () => {
          this.log(`registered as ${aor}`);
          this.set({ registered: true, registering: false });
        },
        onUnregistered: () => {
          this.log("unregistered");
          this.set({ registered: false });
        },
        onCallCreated: () => this.onCallCreated(),
        onCallReceived: () => this.onCallReceived(),
        onCallAnswered: () => {
          this.log("call answered: media starting");
          this.set({ callState: "active", answeredAt: Date.now() });
        },
        onCallHangup: () => this.onCallHangup(),
        onCallHold: (held) => {
          this.log(held ? "call on hold" : "call not on hold");
          this.set({ held, holdPending: false });
        },
        onCallDTMFReceived: (tone) => {
          this.log(`DTMF received: ${tone}`);
          this.set({ dtmfReceived: this.state.dtmfReceived + tone });
        },
      },
    });
    // SimpleUser retries a rejected REGISTER forever; stop once the user gave up or we were refused.
    su.sessionManager.options.registerGuard = async () => !this.wantRegistered;
    this.su = su;
    this.set({ aor });
    return su;
  }

  async connect() {
    const su = this.create();
    if (su.isConnected()) return;
    this.log(`connecting to ${this.o.server}`);
    try {
      await su.connect();
    } catch (e) {
      this.fail("Connection", { message: `cannot connect to ${this.o.server}: ${errText(e)}` });
      // Drop this user agent: no reconnection attempts, and the settings become editable again.
      this.su = null;
      su.disconnect().catch(() => {});
      throw e;
    }
  }

  async disconnect() {
    this.wantRegistered = false;
    if (!this.su) return;
    const su = this.su;
    try {
      if (su.session) await su.hangup().catch(() => {});
      await su.disconnect();
    } finally {
      this.su = null;
      this.set({ connected: false, registered: false, registering: false });
    }
  }

  async register() {
    await this.connect();
    this.wantRegistered = true;
    this.set({ registering: true, lastError: null });
    this.log(`registering ${this.state.aor}`);
    const sm = this.su.sessionManager;
    await this.su.register({
      requestDelegate: {
        onReject: (response) => {
          // SIP.js answers 401/407 itself; this is a final refusal (or a failed challenge).
          this.wantRegistered = false;
          clearTimeout(sm.registrationAttemptTimeout);
          sm.registrationAttemptTimeout = undefined;
          sm.shouldBeRegistered = false;
          const m = response.message;
          this.set({ registering: false, registered: false });
          this.fail("Registration failed", { code: m.statusCode, reason: m.reasonPhrase });
        },
      },
    });
  }

  async unregister() {
    this.wantRegistered = false;
    if (!this.su) return;
    try {
      await this.su.unregister();
    } catch (e) {
      this.log(`unregister: ${errText(e)}`, "warn");
    }
    this.set({ registered: false, registering: false });
  }

  async call(target) {
    if (this.session) throw new Error("a call is already in progress");
    const uri = toUri(target, splitUser(this.o.user, this.o.domain).domain);
    this.set({ lastError: null });
    await this.connect();
    this.localHangup = false;
    this.declined = false;
    this.failure = null;
    this.callEnded = false;
    this.set({
      callState: "calling", direction: "outgoing", peer: uri, held: false, muted: false,
      callStartedAt: Date.now(), answeredAt: null, dtmfSent: "", dtmfReceived: "", calls: this.state.calls + 1,
    });
    this.log(`calling ${uri}`);
    try {
      await this.su.call(uri, undefined, {
        requestDelegate: {
          onProgress: (r) => {
            const m = r.message;
            if (m.statusCode >= 180 && this.state.callState === "calling") {
              this.log(`${m.statusCode} ${m.reasonPhrase}`);
              this.set({ callState: "ringing" });
            }
          },
          onReject: (r) => {
            const m = r.message;
            this.failure = { code: m.statusCode, reason: m.reasonPhrase };
            this.fail("Call failed", this.failure);
            // SIP.js may report the hangup before the rejection: complete the record.
            if (this.callEnded && this.state.lastCall) {
              this.set({ lastCall: { ...this.state.lastCall, endedBy: "rejected", ...this.failure } });
            }
          },
        },
      });
    } catch (e) {
      // getUserMedia refused, bad URI, transport down...
      this.fail("Call failed", { message: errText(e) });
      this.endCall("failed");
      throw e;
    }
  }

  async answer() {
    if (!this.session) return;
    this.log("answering");
    try {
      await this.su.answer();
    } catch (e) {
      this.fail("Answer failed", { message: errText(e) });
    }
  }

  /** Refuses the ringing incoming call (603 Decline by default). */
  async reject(statusCode = 603) {
    const s = this.session;
    if (!s || this.state.callState !== "incoming") return;
    this.localHangup = true;
    this.declined = true;
    this.log(`rejecting with ${statusCode}`);
    await s.reject({ statusCode }).catch((e) => this.log(`reject: ${errText(e)}`, "warn"));
  }

  /** Ends the call whatever its state: CANCEL, BYE or a reject. */
  async hangup() {
    if (!this.session) return;
    this.localHangup = true;
    this.log("hanging up");
    await this.su.hangup().catch((e) => this.log(`hangup: ${errText(e)}`, "warn"));
  }

  async hold(on = !this.state.held) {
    const s = this.session;
    if (!s || this.state.callState !== "active" || this.state.holdPending) return;
    // SimpleUser hides the re-INVITE's response: wrap this one invite() to report a refusal
    // with its status code (SIP.js restores the previous hold state by itself).
    const orig = s.invite;
    s.invite = (options = {}) => {
      s.invite = orig;
      const d = options.requestDelegate || {};
      options.requestDelegate = {
        ...d,
        onReject: (r) => {
          this.fail(on ? "Hold failed" : "Resume failed", { code: r.message.statusCode, reason: r.message.reasonPhrase });
          // SIP.js 0.21's web SDH cannot roll back the refused offer; without this the
          // RTCPeerConnection stays in have-local-offer and every later re-INVITE fails.
          const pc = this.peerConnection;
          const rollback = pc?.signalingState === "have-local-offer"
            ? pc.setLocalDescription({ type: "rollback" }).catch(() => {})
            : Promise.resolve();
          rollback.then(() => d.onReject?.(r));
        },
      };
      return orig.call(s, options);
    };
    this.set({ holdPending: true });
    this.log(on ? "putting the call on hold" : "resuming the call");
    try {
      await (on ? this.su.hold() : this.su.unhold());
    } catch (e) {
      this.set({ holdPending: false });
      this.fail(on ? "Hold failed" : "Resume failed", { message: errText(e) });
    } finally {
      s.invite = orig;
    }
  }

  mute(on = !this.state.muted) {
    if (!this.session) return;
    if (on) this.su.mute();
    else this.su.unmute();
    this.set({ muted: this.su.isMuted() });
    this.log(this.state.muted ? "microphone muted" : "microphone on");
  }

  /** How the keypad sends DTMF from now on: "info" (SIP INFO) or "rfc4733" (in the audio). */
  setDtmfMode(mode) {
    this.o.dtmf = mode;
    if (this.su) this.su.sessionManager.options.sendDTMFUsingSessionDescriptionHandler = mode === "rfc4733";
  }

  async dtmf(digit) {
    if (!this.session || this.state.callState !== "active") return;
    try {
      await this.su.sendDTMF(digit);
      this.set({ dtmfSent: this.state.dtmfSent + digit });
      this.log(`DTMF sent: ${digit}`);
    } catch (e) {
      this.fail("DTMF failed", { message: errText(e) });
    }
  }

  onCallCreated() {
    this.log("call created");
  }

  onCallReceived() {
    const s = this.session;
    const id = s?.remoteIdentity;
    const who = id ? `${id.displayName ? `${id.displayName} ` : ""}<${id.uri.toString()}>` : "unknown";
    this.localHangup = false;
    this.declined = false;
    this.failure = null;
    this.callEnded = false;
    this.log(`incoming call from ${who}`);
    this.set({
      callState: "incoming", direction: "incoming", peer: who, held: false, muted: false,
      callStartedAt: Date.now(), answeredAt: null, dtmfSent: "", dtmfReceived: "", calls: this.state.calls + 1,
      lastError: null,
    });
  }

  onCallHangup() {
    let endedBy;
    if (this.failure) endedBy = "rejected";
    else if (this.declined) endedBy = "declined";
    else if (this.localHangup) endedBy = "local";
    else if (this.state.callState === "active") endedBy = "remote";
    else if (this.state.direction === "incoming") endedBy = "caller-cancelled";
    else endedBy = "failed";
    this.endCall(endedBy);
  }

  endCall(endedBy) {
    if (this.callEnded) return; // a failed call() and the hangup callback both land here
    this.callEnded = true;
    const durationMs = this.state.answeredAt ? Date.now() - this.state.answeredAt : 0;
    const lastCall = { endedBy, durationMs, code: this.failure?.code ?? null, reason: this.failure?.reason ?? null };
    this.log(`call ended (${endedBy}${lastCall.code ? `, ${lastCall.code} ${lastCall.reason}` : ""})`);
    this.set({ callState: "ended", held: false, holdPending: false, muted: false, lastCall });
  }

  remoteTrack(kind = "audio") {
    const pc = this.peerConnection;
    return pc?.getReceivers().find((r) => r.track?.kind === kind)?.track ?? null;
  }

  /** getStats summary of the current call (zeros when there is none). */
  async stats() {
    return summarizeStats(this.peerConnection);
  }

  /** Dominant frequency of the received audio over `ms` (see analyseTone). */
  async tone(ms = 1500) {
    const track = this.remoteTrack("audio");
    if (!track) return { hz: 0, db: -Infinity, rms: 0 };
    return analyseTone(track, ms);
  }

  /** JSON-safe snapshot for tests. */
  snapshot() {
    return JSON.parse(JSON.stringify(this.state));
  }
}

/**
 * Audio and video numbers from RTCPeerConnection.getStats(). Units: `roundTrip` and `jitter`
 * in seconds (as WebRTC reports them), `roundTripMs`/`jitterMs` in milliseconds, `loss` as a
 * fraction 0..1 of the audio packets expected, `lossPercent` 0..100.
 */
export async function summarizeStats(pc) {
  const out = {
    available: false, connectionState: pc?.connectionState ?? "none",
    packetsReceived: 0, packetsSent: 0, packetsLost: 0, bytesReceived: 0, bytesSent: 0,
    roundTrip: null, roundTripMs: null, jitter: null, jitterMs: null, loss: 0, lossPercent: 0,
    codec: null, audio: null, video: null, selectedPair: null, dtlsState: null,
  };
  if (!pc) return out;
  const report = await pc.getStats();
  const byId = new Map();
  report.forEach((s) => byId.set(s.id, s));
  const codec = (s) => {
    const c = byId.get(s.codecId);
    return c ? `${c.mimeType.split("/")[1]}/${c.clockRate}` : null;
  };
  const audio = { packetsReceived: 0, packetsSent: 0, packetsLost: 0, bytesReceived: 0, bytesSent: 0, jitter: null, totalSamplesReceived: 0, codec: null, remoteRoundTrip: null };
  const video = { packetsReceived: 0, packetsSent: 0, framesDecoded: 0, framesEncoded: 0, frameWidth: 0, frameHeight: 0, codec: null };
  let pairRtt = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "audio") {
      audio.packetsReceived += s.packetsReceived || 0;
      audio.packetsLost += Math.max(0, s.packetsLost || 0);
      audio.bytesReceived += s.bytesReceived || 0;
      audio.totalSamplesReceived += s.totalSamplesReceived || 0;
      if (s.jitter != null) audio.jitter = s.jitter;
      audio.codec = codec(s) || audio.codec;
    } else if (s.type === "outbound-rtp" && s.kind === "audio") {
      audio.packetsSent += s.packetsSent || 0;
      audio.bytesSent += s.bytesSent || 0;
      audio.sendCodec = codec(s);
    } else if (s.type === "remote-inbound-rtp" && s.kind === "audio") {
      if (s.roundTripTime != null) audio.remoteRoundTrip = s.roundTripTime;
    } else if (s.type === "inbound-rtp" && s.kind === "video") {
      video.packetsReceived += s.packetsReceived || 0;
      video.framesDecoded += s.framesDecoded || 0;
      video.frameWidth = s.frameWidth || video.frameWidth;
      video.frameHeight = s.frameHeight || video.frameHeight;
      video.codec = codec(s) || video.codec;
    } else if (s.type === "outbound-rtp" && s.kind === "video") {
      video.packetsSent += s.packetsSent || 0;
      video.framesEncoded += s.framesEncoded || 0;
    } else if (s.type === "transport") {
      out.dtlsState = s.dtlsState ?? null;
      const pair = byId.get(s.selectedCandidatePairId);
      if (pair) {
        if (pair.currentRoundTripTime != null) pairRtt = pair.currentRoundTripTime;
        const l = byId.get(pair.localCandidateId);
        const r = byId.get(pair.remoteCandidateId);
        if (l && r) out.selectedPair = `${l.candidateType} ${l.address}:${l.port} -> ${r.candidateType} ${r.address}:${r.port}`;
      }
    }
  });
  const rtt = audio.remoteRoundTrip ?? pairRtt;
  const expected = audio.packetsReceived + audio.packetsLost;
  Object.assign(out, {
    available: true,
    packetsReceived: audio.packetsReceived, packetsSent: audio.packetsSent, packetsLost: audio.packetsLost,
    bytesReceived: audio.bytesReceived, bytesSent: audio.bytesSent,
    roundTrip: rtt, roundTripMs: rtt == null ? null : Math.round(rtt * 1000),
    jitter: audio.jitter, jitterMs: audio.jitter == null ? null : Math.round(audio.jitter * 10000) / 10,
    loss: expected ? audio.packetsLost / expected : 0,
    lossPercent: expected ? Math.round((audio.packetsLost / expected) * 1000) / 10 : 0,
    codec: audio.codec || audio.sendCodec || null,
    audio, video,
  });
  return out;
}

/**
 * Dominant frequency of an audio track over `ms`, via WebAudio: AnalyserNode with
 * fftSize 8192 (5.9 Hz bins at 48 kHz), peak bin above ~17 Hz. A 440 Hz tone reads 440-441.
 * Returns { hz, db, rms }; hz is 0 when the track is silent.
 */
export async function analyseTone(track, ms = 1500) {
  const ac = new AudioContext();
  try {
    await ac.resume();
    const an = ac.createAnalyser();
    an.fftSize = 8192;
    ac.createMediaStreamSource(new MediaStream([track])).connect(an);
    const spec = new Float32Array(an.frequencyBinCount);
    const wave = new Float32Array(an.fftSize);
    let best = { hz: 0, db: -Infinity };
    let rms = 0;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      await new Promise((r) => setTimeout(r, 50));
      an.getFloatFrequencyData(spec);
      an.getFloatTimeDomainData(wave);
      rms = Math.max(rms, Math.sqrt(wave.reduce((s, x) => s + x * x, 0) / wave.length));
      for (let i = 3; i < spec.length; i++) {
        if (spec[i] > best.db) best = { hz: (i * ac.sampleRate) / an.fftSize, db: spec[i] };
      }
    }
    const silent = rms < 0.001;
    return { hz: silent ? 0 : Math.round(best.hz), db: Number.isFinite(best.db) ? Math.round(best.db) : null, rms: Number(rms.toFixed(4)) };
  } finally {
    ac.close().catch(() => {});
  }
}

export const KEYS = [
  ["1", ""], ["2", "ABC"], ["3", "DEF"],
  ["4", "GHI"], ["5", "JKL"], ["6", "MNO"],
  ["7", "PQRS"], ["8", "TUV"], ["9", "WXYZ"],
  ["*", ""], ["0", "+"], ["#", ""],
];

/** Id of a keypad button: key-0..key-9, key-star, key-hash (with an optional prefix). */
export const keyId = (k, prefix = "") => `${prefix}key-${k === "*" ? "star" : k === "#" ? "hash" : k}`;

/** Fills `container` with a 4x3 DTMF keypad; `onKey(digit)` on click. */
export function buildKeypad(container, onKey, prefix = "") {
  container.classList.add("keypad");
  container.setAttribute("role", "group");
  for (const [k, letters] of KEYS) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = keyId(k, prefix);
    b.className = "key";
    b.dataset.key = k;
    b.setAttribute("aria-label", k === "*" ? "star" : k === "#" ? "pound" : k);
    b.innerHTML = `<span class="digit">${k}</span><span class="letters" aria-hidden="true">${letters || "&nbsp;"}</span>`;
    b.addEventListener("click", () => onKey(k));
    container.appendChild(b);
  }
}

/** Appends timestamped lines to an <ol> (newest first, capped) and to the console. */
export function makeLogger(list, max = 200) {
  return ({ detail }) => {
    const { msg, level, name } = detail;
    const line = `${new Date().toLocaleTimeString()} ${name ? `[${name}] ` : ""}${msg}`;
    (level === "error" ? console.warn : console.log)(line);
    if (!list) return;
    const li = document.createElement("li");
    li.textContent = line;
    if (level === "error") li.className = "err";
    list.prepend(li);
    while (list.children.length > max) list.lastChild.remove();
  };
}

/** Human text of a call state. */
export function callStateText(st) {
  switch (st.callState) {
    case "idle": return "No call";
    case "calling": return `Calling ${st.peer}…`;
    case "ringing": return `Ringing ${st.peer}…`;
    case "incoming": return `Incoming call from ${st.peer}`;
    case "active": return `${st.held ? "On hold" : "In call"} with ${st.peer}`;
    case "ended": {
      const c = st.lastCall;
      if (!c) return "Call ended";
      if (c.code) return "Call failed"; // the error box has the status code and reason
      const by = { local: "you hung up", declined: "you declined", remote: "the other side hung up", "caller-cancelled": "missed call", failed: "call failed" }[c.endedBy] || c.endedBy;
      return `Call ended (${by})`;
    }
    default: return st.callState;
  }
}

/** Best-effort hang up and un-register when the page goes away (tab closed, reload). */
export function hangupOnPageHide(getLines) {
  window.addEventListener("pagehide", () => {
    for (const l of getLines()) {
      if (!l) continue;
      try {
        if (l.session) l.su.hangup();
        if (l.su) l.su.disconnect();
      } catch {
        /* the page is going away */
      }
    }
  });
}
