// baresip (Debian package, 1.0.x) as a real SIP phone in the browser end-to-end tests.
//
// Headless: no UI module on stdin; it is driven through ctrl_tcp (netstring-framed JSON commands
// on a loopback TCP port; it answers {"response":true,...} and pushes {"event":true,...}).
// Its microphone is the aufile source playing a sox-made WAV tone; its loudspeaker is ALSA's
// file plugin piping into baresip-pacer.mjs, which writes what it plays to heard.raw at real-time
// pace; hears() checks a stretch of it by frequency (Goertzel). (baresip 1.0's sndfile recorder
// is no use here: a re-INVITE that is not sendrecv drops its decode filter for the rest of the
// call.) Config and accounts are written by the test into the world's directory
// (`baresip -f <dir>`); the process is a harness Proc, stopped by its PID (its loudspeaker
// process ends with it: the pipe closes).
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Proc, freePorts, toneWav, until, sleep } from "./harness.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const BARESIP = process.env.BARESIP || "baresip";
const MODULES = process.env.BARESIP_MODULES || "/usr/lib/baresip/modules";

/** A baresip phone registered as `user` at the Kamailio registrar on 127.0.0.1:`kport`. */
export class Baresip {
  /**
   * @param {import("./harness.mjs").World} w
   * @param {object} o
   * @param {string} o.user         subscriber name at Kamailio (and its password)
   * @param {string} o.password
   * @param {number} o.kport        Kamailio's UDP port
   * @param {number} [o.hz]         tone its microphone plays (default 880)
   * @param {string} [o.answermode] manual | early | auto (baresip account parameter)
   * @param {string[]} [o.codecs]   codec modules in offer order (default: baresip's own order
   *                                opus, g722, g711)
   */
  static async start(w, o) {
    const b = new Baresip(w, o);
    await b.launch();
    return b;
  }

  constructor(w, { user, password, kport, hz = 880, answermode = "manual", codecs = ["opus", "g722", "g711"] }) {
    this.w = w;
    this.o = { user, password, kport, hz, answermode, codecs };
    this.dir = path.join(w.dir, `baresip-${user}`);
    this.events = []; // every ctrl_tcp event, in order
    this.pending = new Map(); // token -> { resolve, reject }
    this.nextToken = 1;
  }

  async launch() {
    const { user, password, kport, hz, answermode, codecs } = this.o;
    if (!fs.existsSync(path.join(MODULES, "ctrl_tcp.so"))) {
      throw new Error(`${MODULES}/ctrl_tcp.so missing: apt-get install --no-install-recommends baresip (scripts/e2e.sh does)`);
    }
    fs.mkdirSync(this.dir, { recursive: true });
    const sip = await freePorts(1, ["udp", "tcp"]);
    const ctrl = await freePorts(1, ["tcp"]);
    const rtp = await freePorts(20, ["udp"]);
    this.ctrlPort = ctrl;
    const wav = toneWav(hz);
    this.heardFile = path.join(this.dir, "heard.raw");
    fs.writeFileSync(this.heardFile, "");
    // Two paced sinks: the loudspeaker (calls) and the alert device (its ring tone), apart.
    const sink = (name, file) => {
      const f = path.join(this.dir, name);
      fs.writeFileSync(f, `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(path.join(HERE, "baresip-pacer.mjs"))} ${JSON.stringify(file)}\n`, { mode: 0o755 });
      return f;
    };
    const speaker = sink("speaker", this.heardFile);
    const alert = sink("alert", path.join(this.dir, "alert.raw"));
    const config = [
      "poll_method epoll",
      `sip_listen 127.0.0.1:${sip}`,
      "net_interface 127.0.0.1",
      "call_local_timeout 60",
      "call_max_calls 2",
      // What it plays goes through ALSA's file plugin into baresip-pacer.mjs (see there).
      `audio_player alsa,file:'|${speaker}'`,
      "auplay_srate 48000",
      "auplay_channels 1",
      `audio_alert alsa,file:'|${alert}'`,
      `audio_source aufile,${wav}`,
      "ausrc_srate 48000",
      "ausrc_channels 1",
      `rtp_ports ${rtp}-${rtp + 19}`,
      `module_path ${MODULES}`,
      ...codecs.map((c) => `module ${c}.so`),
      "module aufile.so",
      "module alsa.so",
      "module_tmp account.so",
      "module_app menu.so",
      "module_app ctrl_tcp.so",
      `ctrl_tcp_listen 127.0.0.1:${ctrl}`,
      "ringback_disabled yes",
      "statmode_default off",
      "",
    ].join("\n");
    fs.writeFileSync(path.join(this.dir, "config"), config);
    fs.writeFileSync(path.join(this.dir, "accounts"),
      `<sip:${user}@127.0.0.1;transport=udp>;auth_pass=${password};outbound="sip:127.0.0.1:${kport};transport=udp";` +
      `regint=600;answermode=${answermode};ptime=20\n`);
    fs.writeFileSync(path.join(this.dir, "contacts"), "");
    // -s: SIP trace on stdout (the messages are the evidence when a call fails, and some steps
    // read them). stdbuf -oL: line-buffered, so a message is in the log when it is sent (a pipe
    // would hold 4 KiB back); stdbuf execs baresip, so the PID is baresip's.
    this.proc = new Proc(`baresip-${user}`, "stdbuf", ["-oL", "-eL", BARESIP, "-4", "-s", "-f", this.dir],
      { logFile: path.join(this.dir, "baresip.log"), cwd: this.dir });
    this.w.procs.push(this.proc);
    if (!this.w.baresips) {
      // The harness's failure dump knows nothing of baresip: append its logs (without editing
      // harness.mjs, which other scenarios share).
      this.w.baresips = [];
      const dump = this.w.dump.bind(this.w);
      this.w.dump = (err) => {
        dump(err);
        for (const b of this.w.baresips) {
          console.log(`======== baresip ${b.o.user} (exit ${b.proc.exitCode ?? "running"}): log and SIP trace (last 600 lines)\n` +
            b.proc.lines.slice(-600).join("\n"));
        }
      };
    }
    this.w.baresips.push(this);
    await this.connect();
  }

  /** Opens the ctrl_tcp connection (retried until it listens; bounded: 10 s). */
  async connect() {
    this.sock = await until(() => new Promise((resolve) => {
      if (!this.proc.running) throw new Error(`baresip exited (${this.proc.exitCode}):\n${this.proc.text()}`);
      const s = net.connect(this.ctrlPort, "127.0.0.1");
      s.once("connect", () => resolve(s));
      s.once("error", () => resolve(null));
    }), 10000, `baresip ctrl_tcp on ${this.ctrlPort}`, 100);
    let buf = Buffer.alloc(0);
    this.sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      // Netstrings: <length>:<payload>,
      for (;;) {
        const colon = buf.indexOf(":");
        if (colon < 0) break;
        const len = Number(buf.subarray(0, colon).toString());
        if (buf.length < colon + 1 + len + 1) break;
        const payload = buf.subarray(colon + 1, colon + 1 + len).toString();
        buf = buf.subarray(colon + 1 + len + 1);
        this.onMessage(payload);
      }
    });
    this.sock.on("error", () => {});
  }

  onMessage(payload) {
    let m;
    try {
      m = JSON.parse(payload);
    } catch {
      this.w.note(`[baresip-${this.o.user}] unparsable ctrl message: ${payload}`);
      return;
    }
    this.w.note(`[baresip-${this.o.user}] ctrl: ${payload}`);
    if (m.event) this.events.push(m);
    if (m.response && this.pending.has(m.token)) {
      const p = this.pending.get(m.token);
      this.pending.delete(m.token);
      p.resolve(m);
    }
  }

  /** Sends a menu command (e.g. "dial", "accept", "hold"); resolves with its response. */
  async cmd(command, params = "") {
    const token = String(this.nextToken++);
    const body = JSON.stringify({ command, params, token });
    let timer;
    const res = new Promise((resolve, reject) => {
      this.pending.set(token, { resolve, reject });
      timer = setTimeout(() => {
        if (this.pending.delete(token)) reject(new Error(`baresip: no response to "${command} ${params}" in 5 s`));
      }, 5000);
    });
    this.sock.write(`${Buffer.byteLength(body)}:${body},`);
    const r = await res.finally(() => clearTimeout(timer));
    if (!r.ok) throw new Error(`baresip: "${command} ${params}" failed: ${JSON.stringify(r)}`);
    return r;
  }

  /** Events of `type` (e.g. "CALL_ESTABLISHED"), optionally after index `from`. */
  eventsOf(type, from = 0) {
    return this.events.slice(from).filter((e) => e.type === type);
  }

  /** Waits for an event of `type` at or after index `from`; returns it. */
  waitEvent(type, ms, from = 0) {
    return until(() => {
      if (!this.proc.running) throw new Error(`baresip exited (${this.proc.exitCode}) before ${type}`);
      return this.eventsOf(type, from)[0];
    }, ms, `baresip ${this.o.user}: event ${type} (events so far: ${this.events.map((e) => e.type).join(",")})`);
  }

  /**
   * Waits until registered at Kamailio: the REGISTER_OK event, or (it registers at start-up,
   * before ctrl_tcp is connected) its log line "<user>@127.0.0.1: {0/UDP/v4} 200 OK ...".
   */
  async registered(ms = 10000) {
    const re = new RegExp(`^${this.o.user}@127\\.0\\.0\\.1: \\{\\d+/UDP/v4\\} 200 OK`);
    return until(() => {
      if (!this.proc.running) throw new Error(`baresip exited (${this.proc.exitCode}) before registering`);
      return this.eventsOf("REGISTER_OK")[0] || this.proc.lines.find((l) => re.test(l));
    }, ms, `baresip ${this.o.user} registered at Kamailio`);
  }

  /**
   * Holds DTMF key `digit` down (RFC 4733 event running until releaseKey()). baresip 1.0's
   * "sndcode" presses each character of its argument and releases the last one at the end; an
   * invalid character after the digit stops it before the release (the command then answers
   * "Invalid argument"), so the key stays down as on a real keypad.
   */
  async pressKey(digit) {
    const r = await this.cmd("sndcode", `${digit}x`).then(() => null, (e) => e);
    if (!r || !/Invalid argument/.test(r.message)) throw new Error(`baresip: pressing ${digit} did not go as expected: ${r?.message ?? "no error"}`);
  }

  /** Releases the key held by pressKey() (the event ends: RFC 4733 end packets). */
  async releaseKey() {
    await this.cmd("sndcode", "");
  }

  /** Bytes baresip has played so far (raw S16LE mono 48 kHz in heard.raw). */
  heardBytes() {
    return fs.statSync(this.heardFile).size;
  }

  /**
   * What baresip plays over the next `ms`: { seconds, hz, rms, share } of the audio its
   * loudspeaker received in that window (silence while no media arrives: hz 0).
   */
  async hears(ms = 1500) {
    const a = this.heardBytes() & ~1;
    await sleep(ms);
    const b = Buffer.alloc((this.heardBytes() - a) & ~1);
    const fd = fs.openSync(this.heardFile, "r");
    try {
      fs.readSync(fd, b, 0, b.length, a);
    } finally {
      fs.closeSync(fd);
    }
    const x = new Float32Array(b.length >> 1);
    for (let i = 0; i < x.length; i++) x[i] = b.readInt16LE(2 * i) / 32768;
    return { seconds: Number((x.length / 48000).toFixed(2)), ...dominantTone(x, 48000) };
  }

  /** The SIP trace and log printed so far. */
  log() {
    return this.proc.text();
  }
}

// ---------------------------------------------------------------------------------------------
// Tone analysis

/** Power of `hz` in `x` (Goertzel), normalised by the length. */
function goertzel(x, rate, hz) {
  const k = (2 * Math.cos((2 * Math.PI * hz) / rate));
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < x.length; i++) {
    const s = x[i] + k * s1 - s2;
    s2 = s1;
    s1 = s;
  }
  return (s1 * s1 + s2 * s2 - k * s1 * s2) / (x.length * x.length);
}

/**
 * Dominant frequency (100-3000 Hz, 1 Hz resolution) and RMS of `samples`: a 10 Hz scan, then
 * 1 Hz around the best. { hz, rms, share } where share = power at hz / total power (a pure tone
 * gives about 0.5 with this normalisation; noise gives far less). hz is 0 for silence.
 */
export function dominantTone(samples, rate) {
  let e = 0;
  for (const v of samples) e += v * v;
  const rms = samples.length ? Math.sqrt(e / samples.length) : 0;
  if (rms < 0.001) return { hz: 0, rms, share: 0 };
  let best = { hz: 0, p: -1 };
  for (let hz = 100; hz <= 3000; hz += 10) {
    const p = goertzel(samples, rate, hz);
    if (p > best.p) best = { hz, p };
  }
  for (let hz = best.hz - 10; hz <= best.hz + 10; hz++) {
    const p = goertzel(samples, rate, hz);
    if (p > best.p) best = { hz, p };
  }
  return { hz: best.hz, rms: Number(rms.toFixed(4)), share: Number((best.p / (e / samples.length)).toFixed(3)) };
}

// ---------------------------------------------------------------------------------------------
// DTMF heard in a page

const DTMF_ROWS = [697, 770, 852, 941];
const DTMF_COLS = [1209, 1336, 1477, 1633];
const DTMF_KEYS = ["123A", "456B", "789C", "*0#D"];

/**
 * Listens to the page's remote audio for `ms` (window.__phone.line's track) and returns the DTMF
 * key heard longest: { key, frames, total } where frames counts the 50 ms polls in which a row and
 * a column frequency were both the strongest of the DTMF set and within 12 dB of the spectrum's
 * peak (the browser plays RFC 4733 events it receives as tones).
 */
export async function dtmfHeard(page, ms = 1500) {
  const polls = await page.evaluate(async ({ ms, freqs }) => {
    const track = window.__phone.line.remoteTrack("audio");
    if (!track) return [];
    const ac = new AudioContext();
    try {
      await ac.resume();
      const an = ac.createAnalyser();
      an.fftSize = 4096;
      an.smoothingTimeConstant = 0;
      ac.createMediaStreamSource(new MediaStream([track])).connect(an);
      const spec = new Float32Array(an.frequencyBinCount);
      const bin = (hz) => Math.round((hz * an.fftSize) / ac.sampleRate);
      const level = (hz) => Math.max(spec[bin(hz) - 1], spec[bin(hz)], spec[bin(hz) + 1]);
      const out = [];
      const end = performance.now() + ms;
      while (performance.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        an.getFloatFrequencyData(spec);
        let peak = -Infinity;
        for (let i = 3; i < spec.length; i++) peak = Math.max(peak, spec[i]);
        out.push({ peak, levels: freqs.map(level) });
      }
      return out;
    } finally {
      ac.close().catch(() => {});
    }
  }, { ms, freqs: [...DTMF_ROWS, ...DTMF_COLS] });
  const counts = new Map();
  for (const { peak, levels } of polls) {
    const rows = levels.slice(0, 4);
    const cols = levels.slice(4);
    const r = rows.indexOf(Math.max(...rows));
    const c = cols.indexOf(Math.max(...cols));
    if (rows[r] >= peak - 12 && cols[c] >= peak - 12 && peak > -80) {
      const key = DTMF_KEYS[r][c];
      counts.set(key, (counts.get(key) || 0) + 1);
    }
  }
  let best = { key: null, frames: 0, total: polls.length };
  for (const [key, frames] of counts) if (frames > best.frames) best = { key, frames, total: polls.length };
  return best;
}
