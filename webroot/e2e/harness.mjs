// Harness of the browser end-to-end tests: starts the real gateway, Kamailio (registrar.cfg) and
// SIPp (scenarios of signaling/tests/peers/sipp) as child processes on 127.0.0.1, launches
// Debian's Chromium through playwright-core with a fake microphone playing a WAV tone, and stops
// everything it started by PID (SIGTERM, then SIGKILL after 5 s). On failure it prints the pages'
// console output, the gateway log and the peers' logs.
//
// Firefox (Debian's firefox-esr) is driven by puppeteer-core over WebDriver BiDi behind the same
// page interface (`w.browser(hz, "firefox")`); see FoxBrowser below.
//
// Env: GATEWAY_BIN (default ../target/debug/webrtc-phone relative to webroot), CHROMIUM
// (default /usr/bin/chromium), FIREFOX (default /usr/bin/firefox-esr), E2E_TONE_DIR (where tone440.wav / tone660.wav are, made with sox
// when missing), E2E_KEEP=1 (keep the per-test directories), E2E_VERBOSE=1 (print page console
// output as it comes), E2E_GATEWAY_LOG_LEVEL (RTPP_LOG_LEVEL of the gateway, default DBUG: the
// SIP messages are in its log).
import { spawn, execFileSync } from "node:child_process";
import dgram from "node:dgram";
import fs from "node:fs";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import puppeteer from "puppeteer-core";
import { RtpTap } from "./rtp-tap.mjs";

export const WEBROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const REPO = path.resolve(WEBROOT, "..");
export const PEERS = path.join(REPO, "signaling/tests/peers");
export const GATEWAY_BIN = path.resolve(WEBROOT, process.env.GATEWAY_BIN || "../target/debug/webrtc-phone");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
/** The browsers each scenario runs in (E2E_BROWSERS=chromium,firefox by default). */
export const BROWSERS = (process.env.E2E_BROWSERS || "chromium,firefox").split(",").map((b) => b.trim()).filter(Boolean);

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const stamp = () => `+${((Date.now() - t0) / 1000).toFixed(3)}s`;

/** Polls `fn` every `every` ms until it returns a truthy value; throws `what` after `ms`. */
export async function until(fn, ms, what, every = 50) {
  const end = Date.now() + ms;
  for (let i = 0; i < Math.ceil(ms / every) + 2; i++) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) break;
    await sleep(every);
  }
  throw new Error(`timed out after ${ms} ms: ${what}`);
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set(); // every Proc still running, for the exit handler
const liveBrowsers = new Set(); // PIDs of the Chromium processes we launched

/** A child process started by the tests, stopped by its PID. */
export class Proc {
  constructor(name, cmd, args, { env, logFile, cwd } = {}) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.logFile = logFile;
    this.lines = [];
    this.exitCode = undefined; // number | null (signal) once exited
    this.out = logFile ? fs.createWriteStream(logFile) : null;
    this.child = spawn(cmd, args, { env: env || process.env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        live.delete(this);
        resolve(code);
      });
      this.child.on("error", (e) => {
        this.lines.push(`[spawn error] ${e.message}`);
        this.exitCode = null;
        live.delete(this);
        resolve(null);
      });
    });
    live.add(this);
    for (const s of [this.child.stdout, this.child.stderr]) {
      let rest = "";
      s.on("data", (b) => {
        if (this.out && !this.out.writableEnded) this.out.write(b);
        const parts = (rest + b.toString()).split("\n");
        rest = parts.pop();
        for (const l of parts) this.lines.push(l);
        if (this.lines.length > 20000) this.lines.splice(0, this.lines.length - 20000);
      });
      s.on("end", () => rest && this.lines.push(rest));
    }
  }

  get running() {
    return this.exitCode === undefined;
  }

  text() {
    return this.lines.join("\n");
  }

  /** Waits up to `ms` for a line containing `needle`; returns it. */
  async waitLine(needle, ms) {
    return until(() => {
      const l = this.lines.find((x) => x.includes(needle));
      if (l) return l;
      if (!this.running) throw new Error(`${this.name} exited (${this.exitCode ?? this.signal}) before "${needle}":\n${this.text()}`);
      return null;
    }, ms, `${this.name}: "${needle}"`);
  }

  /** Waits up to `ms` for the process to exit by itself: its exit code, or undefined. */
  async waitExit(ms) {
    if (!this.running) return this.exitCode;
    let timer;
    const r = await Promise.race([this.exited, new Promise((res) => (timer = setTimeout(() => res(undefined), ms)))]);
    clearTimeout(timer);
    return r;
  }

  /** SIGTERM to our PID, SIGKILL after 5 s. */
  async stop() {
    if (this.running) {
      try {
        process.kill(this.pid, "SIGTERM");
      } catch {
        /* already gone */
      }
      if ((await this.waitExit(5000)) === undefined && this.running) {
        try {
          process.kill(this.pid, "SIGKILL");
        } catch {
          /* already gone */
        }
        await this.waitExit(5000);
      }
    }
    this.out?.end();
  }
}

// Interrupted (CI cancel, Ctrl-C): stop every child politely (SIGTERM, SIGKILL after 5 s), then
// exit. Last resort at exit: SIGTERM to the peers (Kamailio's main process takes its workers
// down; a SIGKILL would orphan them) and SIGKILL to the browsers.
let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    const browsers = [...liveBrowsers];
    for (const pid of browsers) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    Promise.all([...live].map((p) => p.stop())).finally(() => process.exit(130));
  });
}
process.on("exit", () => {
  for (const p of live) {
    try {
      process.kill(p.pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
  for (const pid of liveBrowsers) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

// ---------------------------------------------------------------------------------------------
// Ports: random, checked free on 127.0.0.1, below the kernel's ephemeral range (32768-60999) and
// below the 20000-31999 block the Rust integration tests use for their media ranges.

const taken = new Set();

function canBind(kind, port) {
  return new Promise((resolve) => {
    if (kind === "udp") {
      const s = dgram.createSocket("udp4");
      s.once("error", () => resolve(false));
      s.bind(port, "127.0.0.1", () => s.close(() => resolve(true)));
    } else {
      const s = net.createServer();
      s.once("error", () => resolve(false));
      s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
    }
  });
}

/** `count` consecutive ports free for `kinds` (udp/tcp) in [lo, hi), not handed out before. */
export async function freePorts(count = 1, kinds = ["udp"], lo = 10000, hi = 19900) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = lo + Math.floor(Math.random() * (hi - lo - count));
    let ok = true;
    for (let p = base; p < base + count && ok; p++) {
      if (taken.has(p)) ok = false;
      for (const k of kinds) if (ok && !(await canBind(k, p))) ok = false;
    }
    if (ok) {
      for (let p = base; p < base + count; p++) taken.add(p);
      return base;
    }
  }
  throw new Error(`no ${count} free consecutive ports`);
}

/** PIDs of this process's children whose command is Chromium. */
function chromiumChildren() {
  const out = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const comm = st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"));
      const ppid = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === process.pid && /chrom/.test(comm)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Firefox behind the page interface the scenarios use (the part of playwright's they call).

/**
 * A Firefox profile's `permissions.sqlite` granting microphone and camera to `origins` for good
 * (the schema Firefox 153 reads: table moz_perms, user_version 12). Written with python3's sqlite3.
 */
function grantMedia(profile, origins) {
  const script = `
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE moz_perms (id INTEGER PRIMARY KEY, origin TEXT, type TEXT, permission INTEGER, expireType INTEGER, expireTime INTEGER, modificationTime INTEGER)")
now = int(time.time() * 1000)
for origin in sys.argv[2:]:
    for t in ("microphone", "camera"):
        db.execute("INSERT INTO moz_perms (origin, type, permission, expireType, expireTime, modificationTime) VALUES (?, ?, 1, 0, 0, ?)", (origin, t, now))
db.execute("PRAGMA user_version = 12")
db.commit()
db.close()
`;
  execFileSync("python3", ["-c", script, path.join(profile, "permissions.sqlite"), ...origins]);
}

export class FoxBrowser {
  constructor(b, hz) {
    this.b = b;
    this.toneHz = hz;
    this.kind = "firefox";
    this.pid = b.process()?.pid ?? null;
  }

  isConnected() {
    return this.b.connected;
  }

  on(ev, fn) {
    this.b.on(ev, fn);
  }

  close() {
    return this.b.close();
  }
}

class FoxPage {
  constructor(p) {
    this.p = p;
  }

  evaluate(fn, arg) {
    return arg === undefined ? this.p.evaluate(fn) : this.p.evaluate(fn, arg);
  }

  click(sel) {
    return this.p.click(sel);
  }

  /** Sets an input's value as a user would leave it (input and change events). */
  fill(sel, value) {
    return this.p.$eval(sel, (el, v) => {
      el.value = v;
      el.dispatchEvent(new Event("input", { bubbles: true }));
      el.dispatchEvent(new Event("change", { bubbles: true }));
    }, value);
  }

  /** playwright's argument order: (fn, arg, { timeout, polling }). */
  waitForFunction(fn, arg, opts = {}) {
    return this.p.waitForFunction(fn, opts, arg);
  }

  isVisible(sel) {
    return this.p.$eval(sel, (el) => {
      const st = getComputedStyle(el);
      return st.display !== "none" && st.visibility !== "hidden" && el.getClientRects().length > 0;
    });
  }

  textContent(sel) {
    return this.p.$eval(sel, (el) => el.textContent);
  }

  waitForTimeout(ms) {
    return sleep(ms);
  }

  close() {
    return this.p.close();
  }
}

/** GET over HTTPS from a loopback server with a self-signed certificate: the body. */
function httpsGet(url) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
    });
    req.on("timeout", () => req.destroy(new Error(`${url}: timed out`)));
    req.on("error", reject);
  });
}

/** The value of a metric line `name{labels}` (labels as written, or none) in /metrics text. */
export function metricValue(text, name) {
  for (const l of text.split("\n")) {
    const sp = l.lastIndexOf(" ");
    if (sp > 0 && l.slice(0, sp) === name) return Number(l.slice(sp + 1));
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Tones

export function toneWav(hz) {
  const dir = path.resolve(process.env.E2E_TONE_DIR || path.join(os.tmpdir(), "webrtc-phone-e2e-tones"));
  const f = path.join(dir, `tone${hz}.wav`);
  if (!fs.existsSync(f)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${f}.${process.pid}.wav`;
    execFileSync("sox", ["-n", "-r", "48000", "-c", "1", "-b", "16", tmp, "synth", "30", "sine", String(hz), "vol", "0.5"]);
    fs.renameSync(tmp, f);
  }
  return f;
}

/** Asserts `hz` is within 2 % of `want`. */
export function assertTone(hz, want, what) {
  if (!(Math.abs(hz - want) <= want * 0.02)) {
    throw new Error(`${what}: heard ${hz} Hz, want ${want} Hz ± 2 %`);
  }
}

// ---------------------------------------------------------------------------------------------
// One scenario's world: directory, processes, browsers, logs.

export class World {
  constructor(tag) {
    this.tag = tag;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `webrtc-phone-e2e-${tag}-`));
    this.procs = [];
    this.browsers = [];
    this.consoleLines = [];
    this.gw = null;
    this.kamailio = null;
    this.sipps = {};
    this.taps = [];
    this.gateways = [];
  }

  note(line) {
    this.consoleLines.push(`${stamp()} ${line}`);
    if (process.env.E2E_VERBOSE) console.log(line);
  }

  /** A measurement worth printing on success too. */
  info(line) {
    this.note(`[test] ${line}`);
    console.log(`[${this.tag}] ${line}`);
  }

  // ---- gateway

  /** Starts the gateway; `proxyPort` null = the built-in demo PBX. */
  async gateway({ proxyPort = null, extraEnv = {} } = {}) {
    if (!fs.existsSync(GATEWAY_BIN)) throw new Error(`${GATEWAY_BIN} missing: cargo build -p signaling (or set GATEWAY_BIN)`);
    if (!fs.existsSync(path.join(WEBROOT, "dist/demo1.html"))) throw new Error("webroot/dist missing: scripts/build-webroot.sh");
    const env = { ...process.env };
    for (const k of ["OUTBOUND_PROXY", "OUTBOUND_ROUTE", "HTTPS_PORT", "WSS_PORT", "SIP_PORT", "MIN_RTP_PORT", "MAX_RTP_PORT",
      "RTPP_LOG_LEVEL", "RTPP_NODEBUG", "BIND_ADDRESS", "ADVERTISE_ADDRESS", "TLS_CERT", "TLS_KEY", "STATE_DIR", "MEDIA_THREADS",
      "ACCEPT_IPS", "ALLOWED_PTS", "DRAIN_TIMEOUT", "MEDIA_TIMEOUT", "WS_PING_INTERVAL", "WEBROOT"]) delete env[k];
    const https = await freePorts(1, ["tcp"]);
    const wss = await freePorts(1, ["tcp"]);
    const sip = await freePorts(1, ["udp"]);
    const rtp = await freePorts(200, ["udp"]);
    Object.assign(env, {
      BIND_ADDRESS: "127.0.0.1",
      HTTPS_PORT: String(https),
      WSS_PORT: String(wss),
      SIP_PORT: String(sip),
      MIN_RTP_PORT: String(rtp),
      MAX_RTP_PORT: String(rtp + 199),
      MEDIA_THREADS: "1",
      STATE_DIR: path.join(this.dir, "state"),
      WEBROOT: path.join(WEBROOT, "dist"),
      DRAIN_TIMEOUT: "2",
      RTPP_LOG_LEVEL: process.env.E2E_GATEWAY_LOG_LEVEL || "DBUG",
      ...(proxyPort ? { OUTBOUND_PROXY: `127.0.0.1:${proxyPort}` } : {}),
      ...extraEnv,
    });
    const n = this.gateways.length;
    const name = n === 0 ? "gateway" : `gateway${n + 1}`;
    const p = new Proc(name, GATEWAY_BIN, [], { env, logFile: path.join(this.dir, `${name}.log`) });
    p.env = env;
    this.procs.push(p);
    this.gateways.push(p);
    await p.waitLine("webrtc-phone listening", 20000);
    p.base = `https://127.0.0.1:${https}`;
    p.ports = { https, wss, sip, rtp: `${rtp}-${rtp + 199}` };
    // The first gateway is the one pages open by default.
    if (!this.gw) {
      this.gw = p;
      this.base = p.base;
      this.gwPorts = p.ports;
    }
    return p;
  }

  /**
   * Starts `gw` again (after it exited) with the same settings and ports; the new process takes
   * its place in `this.gateways`. Returns it.
   */
  async restartGateway(gw) {
    if (gw.running) throw new Error(`${gw.name} is still running`);
    const p = new Proc(gw.name, GATEWAY_BIN, [], { env: gw.env, logFile: path.join(this.dir, `${gw.name}-restarted.log`) });
    Object.assign(p, { env: gw.env, base: gw.base, ports: gw.ports });
    this.procs.push(p);
    this.gateways[this.gateways.indexOf(gw)] = p;
    if (this.gw === gw) this.gw = p;
    await p.waitLine("webrtc-phone listening", 20000);
    return p;
  }

  /** The gateway's /metrics (HTTPS, its self-signed certificate), as text. */
  async metrics(gw = this.gw) {
    return httpsGet(`${gw.base}/metrics`);
  }

  // ---- Kamailio

  /**
   * Kamailio with registrar.cfg (or `cfg`, a path) on `port` (default: a free one); `echoPort`:
   * where calls to "echo" go.
   */
  async kamailioStart({ echoPort, defines = [], cfg = path.join(PEERS, "kamailio/registrar.cfg"), port = null }) {
    port = port ?? (await freePorts(1, ["udp"]));
    const run = path.join(this.dir, "kamailio-run");
    fs.mkdirSync(run, { recursive: true });
    const args = ["-f", cfg, "-DD", "-E", "-Y", run, "-w", run,
      "-A", `REG_PORT=${port}`, "-A", `ECHO_URI="sip:127.0.0.1:${echoPort}"`];
    for (const d of defines) args.push("-A", d);
    const p = new Proc("kamailio", "kamailio", args, { logFile: path.join(this.dir, "kamailio.log") });
    this.procs.push(p);
    this.kamailio = p;
    this.kport = port;
    // Ready when it answers an out-of-dialog OPTIONS.
    const sock = dgram.createSocket("udp4");
    await new Promise((r) => sock.bind(0, "127.0.0.1", r));
    let ready = false;
    sock.on("message", (m) => {
      if (m.toString().startsWith("SIP/2.0 200")) ready = true;
    });
    try {
      for (let n = 1; n <= 75 && !ready; n++) {
        if (!p.running) throw new Error(`kamailio exited (${p.exitCode}):\n${p.text()}`);
        const me = `127.0.0.1:${sock.address().port}`;
        const opt = `OPTIONS sip:127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP ${me};branch=z9hG4bKready${n}\r\nMax-Forwards: 70\r\n` +
          `From: <sip:probe@127.0.0.1>;tag=p${n}\r\nTo: <sip:127.0.0.1:${port}>\r\nCall-ID: ready${n}@probe\r\n` +
          "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        sock.send(opt, port, "127.0.0.1");
        await sleep(200);
      }
    } finally {
      sock.close();
    }
    if (!ready) throw new Error(`kamailio not answering OPTIONS on ${port} within 15 s:\n${p.text()}`);
    return port;
  }

  // ---- SIPp

  /** SIPp running signaling/tests/peers/sipp/<scenario>; messages in <dir>/<tag>.msg. */
  async sipp(tag, scenario, args) {
    const msg = path.join(this.dir, `${tag}.msg`);
    const full = ["-sf", path.join(PEERS, "sipp", scenario), ...args, "-nostdin", "-trace_msg", "-message_file", msg,
      "-trace_err", "-error_file", path.join(this.dir, `${tag}.err`)];
    const p = new Proc(`sipp-${tag}`, "sipp", full, { logFile: path.join(this.dir, `${tag}.log`) });
    p.msgFile = msg;
    p.messages = () => (fs.existsSync(msg) ? fs.readFileSync(msg, "utf8") : "");
    this.procs.push(p);
    this.sipps[tag] = p;
    const i = args.indexOf("-p");
    if (i >= 0) {
      const port = Number(args[i + 1]);
      // Ready once its SIP port is bound (bounded: 5 s).
      await until(async () => {
        if (!p.running) throw new Error(`sipp ${tag} exited (${p.exitCode}):\n${p.text()}`);
        return !(await canBind("udp", port));
      }, 5000, `sipp ${tag} bound to ${port}`);
    }
    return p;
  }

  /** SIPp uas-echo.xml (RTP echo, -aa answers INFO) on a fresh port; returns { proc, port }. */
  async echoUas(tag = "uas", scenario = "uas-echo.xml", extra = []) {
    const port = await freePorts(1, ["udp"]);
    const mp = await freePorts(4, ["udp"]);
    const proc = await this.sipp(tag, scenario, ["-i", "127.0.0.1", "-p", String(port), "-mi", "127.0.0.1", "-mp", String(mp),
      "-rtp_echo", "-aa", ...extra]);
    return { proc, port };
  }

  /**
   * SIPp uas-echo-tap.xml behind an RtpTap: its answer offers `codecName` as `codecPt` plus
   * telephone-event 101 on the tap's port; returns { proc, port, tap }.
   */
  async tappedEchoUas(tag, codecPt, codecName) {
    const port = await freePorts(1, ["udp"]);
    const mp = await freePorts(4, ["udp"]);
    const tapPort = await freePorts(2, ["udp"]);
    const tap = await RtpTap.start(tapPort, mp);
    this.taps.push(tap);
    const proc = await this.sipp(tag, "uas-echo-tap.xml", ["-i", "127.0.0.1", "-p", String(port), "-mi", "127.0.0.1",
      "-mp", String(mp), "-rtp_echo", "-aa", "-key", "audio_port", String(tapPort), "-key", "codec_pt", String(codecPt),
      "-key", "codec_name", codecName]);
    return { proc, port, tap };
  }

  // ---- browsers

  /** A browser whose fake microphone plays a `hz` tone: Chromium, or Firefox (`kind` "firefox"). */
  async browser(hz, kind = "chromium") {
    if (this.browsers.filter((b) => b.isConnected()).length >= 2) throw new Error("at most two browsers at once");
    if (kind === "firefox") return this.firefox(hz);
    if (kind !== "chromium") throw new Error(`unknown browser ${kind}`);
    const wav = toneWav(hz);
    if (!fs.existsSync(wav)) throw new Error(`${wav} missing: the fake microphone would be silent`);
    const before = chromiumChildren();
    const b = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks",
        "--allow-loopback-in-peer-connection",
        `--use-file-for-fake-audio-capture=${wav}`,
      ],
      timeout: 30000,
    });
    b.toneHz = hz;
    // playwright-core spawns Chromium as a child of this process: the new child is its PID.
    const fresh = chromiumChildren().filter((pid) => !before.includes(pid));
    b.pid = fresh.length === 1 ? fresh[0] : null;
    if (b.pid) {
      liveBrowsers.add(b.pid);
      b.on("disconnected", () => liveBrowsers.delete(b.pid));
    }
    this.browsers.push(b);
    return b;
  }

  /**
   * Firefox ESR, headless, over WebDriver BiDi (puppeteer-core), with what a loopback-only run
   * needs (notes/browser-testing.md §13): a profile made before launch that grants the microphone
   * and camera to the gateway's origin (fake devices alone do not count as a grant, and without
   * one Firefox gathers no loopback candidate), loopback ICE without obfuscated host addresses,
   * fake media with the microphone's sine at `hz`, and a mock audio backend (no sound device: an
   * AudioContext would stay suspended). The gateway must be started first: the grant names its
   * origin.
   */
  async firefox(hz) {
    if (!this.base) throw new Error("start the gateway before Firefox: its profile grants media to the gateway's origin");
    const profile = fs.mkdtempSync(path.join(this.dir, "firefox-profile-"));
    grantMedia(profile, this.gateways.map((g) => g.base));
    const b = await puppeteer.launch({
      browser: "firefox",
      executablePath: FIREFOX,
      headless: true,
      acceptInsecureCerts: true,
      userDataDir: profile,
      timeout: 30000,
      protocolTimeout: 30000,
      extraPrefsFirefox: {
        "media.navigator.streams.fake": true,
        "media.navigator.permission.disabled": true,
        "media.navigator.audio.fake_frequency": hz,
        "media.peerconnection.ice.loopback": true,
        "media.peerconnection.ice.obfuscate_host_addresses": false,
        "media.cubeb.force_mock_context": true,
        "media.autoplay.default": 0,
        "media.autoplay.blocking_policy": 0,
      },
    });
    const fox = new FoxBrowser(b, hz);
    if (fox.pid) {
      liveBrowsers.add(fox.pid);
      b.on("disconnected", () => liveBrowsers.delete(fox.pid));
    }
    this.browsers.push(fox);
    return fox;
  }

  /**
   * A new page (own context) in `browser` at `urlPath`, relative to the first gateway's HTTPS
   * base or to `base` (another gateway's).
   */
  async page(browser, tag, urlPath, base = this.base) {
    if (browser instanceof FoxBrowser) return this.foxPage(browser, tag, urlPath, base);
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    page.setDefaultTimeout(15000);
    page.on("console", (m) => this.note(`[${tag}] ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => this.note(`[${tag}] pageerror: ${e}`));
    page.on("crash", () => this.note(`[${tag}] page crashed`));
    page.on("close", () => this.note(`[${tag}] page closed`));
    page.tag = tag;
    page.ctx = ctx;
    await page.goto(`${base}${urlPath}`);
    return page;
  }

  /** A page in Firefox's default context (its profile holds the media grant). */
  async foxPage(browser, tag, urlPath, base) {
    const raw = await browser.b.newPage();
    raw.setDefaultTimeout(15000);
    raw.on("console", (m) => this.note(`[${tag}] ${m.type()}: ${m.text()}`));
    raw.on("pageerror", (e) => this.note(`[${tag}] pageerror: ${e}`));
    raw.on("close", () => this.note(`[${tag}] page closed`));
    const page = new FoxPage(raw);
    page.tag = tag;
    await raw.goto(`${base}${urlPath}`);
    return page;
  }

  /** The browser console text (all pages), for assertions on SIP messages seen by SIP.js. */
  consoleText() {
    return this.consoleLines.join("\n");
  }

  // ---- diagnostics and teardown

  dump(err) {
    const cut = (s, n = 4000) => (s.length > n ? `${s.slice(0, n)} …[${s.length - n} more chars]` : s);
    const out = [];
    out.push(`\n======== ${this.tag} FAILED: ${err?.stack || err}`);
    out.push(`======== artefacts: ${this.dir}`);
    out.push("======== browser console");
    for (const l of this.consoleLines) out.push(cut(l));
    for (const g of this.gateways) out.push(`======== ${g.name} log (pid ${g.pid}, exit ${g.exitCode ?? "running"})`, g.text());
    if (this.kamailio) {
      out.push("======== kamailio log (last 80 lines)", this.kamailio.lines.slice(-80).join("\n"));
    }
    for (const [tag, p] of Object.entries(this.sipps)) {
      out.push(`======== sipp ${tag} (exit ${p.exitCode ?? "running"}) messages`, cut(p.messages(), 20000));
      const err = path.join(this.dir, `${tag}.err`);
      if (fs.existsSync(err)) out.push(`-------- sipp ${tag} errors`, cut(fs.readFileSync(err, "utf8"), 4000));
    }
    console.log(out.join("\n"));
  }

  async close(failed) {
    for (const b of this.browsers) {
      const pid = b.pid;
      let timer;
      try {
        await Promise.race([b.close(), new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("browser close timed out")), 10000);
        })]);
      } catch {
        if (pid) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            /* gone */
          }
        }
      } finally {
        clearTimeout(timer);
      }
    }
    // Reverse start order: SIPp and the gateway before Kamailio.
    for (const p of [...this.procs].reverse()) await p.stop();
    for (const tap of this.taps) await tap.close();
    fs.writeFileSync(path.join(this.dir, "console.log"), this.consoleText());
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Runs `fn(world)`; on failure (of `fn` or of a step) prints the console and logs; always stops
 * everything. `t` (the node:test context) enables `world.step`.
 */
export async function scenario(tag, fn, t = null) {
  const w = new World(tag);
  w.t = t;
  w.failures = [];
  try {
    await fn(w);
  } catch (e) {
    w.failures.push(e);
    throw e;
  } finally {
    if (w.failures.length) w.dump(w.failures.map((e) => e?.stack || String(e)).join("\n--------\n"));
    await w.close(w.failures.length > 0);
  }
}

/** A subtest of the scenario: its failure is reported, and later steps still run. */
World.prototype.step = async function step(name, fn, { timeout = 30000 } = {}) {
  await this.t.test(name, { timeout }, async () => {
    try {
      await fn();
    } catch (e) {
      this.failures.push(new Error(`step "${name}": ${e?.stack || e}`));
      throw e;
    }
  });
};

// ---------------------------------------------------------------------------------------------
// Page helpers

/** Waits until `fn(arg)` is truthy in the page (polled every 100 ms). */
export function waitIn(page, fn, arg, ms = 15000) {
  return page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
}

/** packetsReceived/packetsSent of `hook` (e.g. "__demo1" or "__demo2.bob"). */
export async function stats(page, hook) {
  return page.evaluate((h) => h.split(".").reduce((o, k) => o[k], window).stats(), hook);
}

/** Growth of the audio packet counters over `ms`: { received, sent }. */
export async function packetGrowth(page, hook, ms) {
  const a = await stats(page, hook);
  await sleep(ms);
  const b = await stats(page, hook);
  return { received: b.packetsReceived - a.packetsReceived, sent: b.packetsSent - a.packetsSent, before: a, after: b };
}

/** SIP responses SIP.js received, as "<code> <CSeq method>" strings, in order (needs log=log). */
export function sipResponses(consoleText) {
  const out = [];
  const re = /Received WebSocket text message:\s+SIP\/2\.0 (\d{3})[^]*?\nCSeq:\s*\d+\s+(\w+)/gi;
  for (const m of consoleText.matchAll(re)) out.push(`${m[1]} ${m[2].toUpperCase()}`);
  return out;
}

/** SIP requests SIP.js sent, as { method, text } (needs log=log). */
export function sipRequestsSent(consoleText) {
  const out = [];
  const re = /Sending WebSocket message:\s+([A-Z]+) sip:([^]*?)(?=\n\S*\s*\+\d+\.\d+s |$)/g;
  for (const m of consoleText.matchAll(re)) out.push({ method: m[1], text: m[0] });
  return out;
}
