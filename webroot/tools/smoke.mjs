// Smoke check of the pages against a running gateway (demo PBX), headless Debian Chromium.
//   node tools/smoke.mjs https://127.0.0.1:8443 [scenario ...]   scenarios: demo1 demo2 phone
// Env: SHOTS (directory for screenshots), VERBOSE=1 (page console), TONE_WAV (default tone440.wav in the cwd; make it with
//   sox -n -r 48000 -c 1 -b 16 tone440.wav synth 30 sine 440 vol 0.5), CHROMIUM.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const base = process.argv[2] || "https://127.0.0.1:8443";
const only = process.argv.slice(3);
const wav = path.resolve(process.env.TONE_WAV || "tone440.wav");
if (!fs.existsSync(wav)) throw new Error(`${wav} missing: the fake microphone would be silent`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns,LocalNetworkAccessChecks",
    "--allow-loopback-in-peer-connection", "--ignore-certificate-errors",
    `--use-file-for-fake-audio-capture=${wav}`,
  ],
});
const results = {};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function open(url, tag) {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  page.on("console", (m) => process.env.VERBOSE && console.log(`[${tag}] ${m.text()}`));
  page.on("pageerror", (e) => console.log(`[${tag}] pageerror ${e}`));
  await page.goto(url);
  return { ctx, page };
}
// SHOTS=dir saves screenshots of the pages in calls there.
const shot = (page, name) => process.env.SHOTS && page.screenshot({ path: path.join(process.env.SHOTS, `${name}.png`), fullPage: true });
const waitFn = (page, fn, arg, timeout = 15000) => page.waitForFunction(fn, arg, { timeout, polling: 100 });

async function demo1() {
  const { ctx, page } = await open(`${base}/demo1.html?autostart=1`, "demo1");
  await waitFn(page, () => window.__demo1.callState === "active");
  await sleep(3000);
  const hz = await page.evaluate(() => window.__toneFrequency(1500));
  await page.click("#key-5");
  await page.click("#key-hash");
  await page.click("#hold");
  await waitFn(page, () => !window.__demo1.state.holdPending, null, 5000);
  const held = await page.evaluate(() => window.__demo1.state.held);
  const holdError = await page.textContent("#error");
  if (held) await page.click("#hold");
  await page.click("#mute");
  const muted = await page.evaluate(() => window.__demo1.state.muted);
  await page.click("#mute");
  const stats = await page.evaluate(() => window.__demo1.stats());
  const status = await page.textContent("#call-status");
  await page.click("#hangup");
  await waitFn(page, () => window.__demo1.callState === "ended", null, 5000);
  const after = await page.evaluate(() => window.__demo1.state);
  await shot(page, "demo1-after");
  await ctx.close();
  return { hz, held, holdError, muted, status, stats, dtmfSent: after.dtmfSent, lastCall: after.lastCall, lastError: after.lastError };
}

async function demo2() {
  const { ctx, page } = await open(`${base}/demo2.html?autostart=1`, "demo2");
  await waitFn(page, () => window.__demo2.alice.callState === "active" && window.__demo2.bob.callState === "active");
  await sleep(3000);
  const [aliceHz, bobHz] = await page.evaluate(() => Promise.all([window.__toneFrequency(1500, "alice"), window.__toneFrequency(1500, "bob")]));
  const bobStats = await page.evaluate(() => window.__demo2.bob.stats());
  const bobVideo = await page.evaluate(() => ({ w: window.__demo2.bob.remoteVideo.videoWidth, h: window.__demo2.bob.remoteVideo.videoHeight }));
  await page.click("#bob-hold");
  await waitFn(page, () => !window.__demo2.bob.state.holdPending, null, 5000);
  const aliceSeesHeld = await page.evaluate(() => window.__demo2.bob.state.held);
  await page.click("#bob-hold"); // resume, or try again after a refusal
  await waitFn(page, () => !window.__demo2.bob.state.holdPending, null, 5000);
  const holdError = await page.textContent("#bob-error");
  const signaling = await page.evaluate(() => window.__demo2.bob.line.peerConnection.signalingState);
  await shot(page, "demo2-incall");
  await page.click("#bob-hangup");
  await waitFn(page, () => window.__demo2.alice.callState === "ended", null, 5000);
  const alice = await page.evaluate(() => window.__demo2.alice.state.lastCall);
  await ctx.close();
  return { aliceHz, bobHz, bobVideo, bobHeld: aliceSeesHeld, holdError, signaling, bobStats: { ...bobStats, audio: undefined }, aliceLastCall: alice };
}

async function phone() {
  // Bob on the Phone page registers and rings; Alice (Demo 1 page, not registered) calls him.
  const b = await open(`${base}/phone.html?user=bob&password=bob&autostart=1&remember=0&aec=0`, "phone");
  await waitFn(b.page, () => window.__phone.registered);
  const a = await open(`${base}/demo1.html?target=bob&user=alice&autostart=1`, "caller");
  await waitFn(b.page, () => window.__phone.callState === "incoming");
  const ringing = await b.page.isVisible("#incoming");
  const caller = await b.page.textContent("#incoming-caller");
  await shot(b.page, "phone-ringing");
  await b.page.click("#answer");
  await waitFn(b.page, () => window.__phone.callState === "active");
  await sleep(3000);
  const hz = await b.page.evaluate(() => window.__toneFrequency(1500));
  const q = await b.page.evaluate(() => ({ rtt: document.getElementById("q-rtt").textContent, loss: document.getElementById("q-loss").textContent, jitter: document.getElementById("q-jitter").textContent, codec: document.getElementById("q-codec").textContent, timer: document.getElementById("call-timer").textContent }));
  await shot(b.page, "phone-incall");
  // Close the caller's page mid-call: the phone should see the call end.
  await a.ctx.close();
  const ended = await waitFn(b.page, () => window.__phone.callState === "ended", null, 10000).then(() => true, () => false);
  const lastCall = await b.page.evaluate(() => window.__phone.state.lastCall);
  // A failing call: nobody is registered as "nobody".
  await b.page.fill("#target", "nobody");
  await b.page.click("#call");
  await waitFn(b.page, () => window.__phone.callState === "ended", null, 10000).catch(() => {});
  const err = await b.page.textContent("#error");
  await shot(b.page, "phone-error");
  await b.ctx.close();
  return { ringing, caller, hz, quality: q, callerClosedEndsCall: ended, lastCall, failedCallError: err };
}

for (const [name, fn] of Object.entries({ demo1, demo2, phone })) {
  if (only.length && !only.includes(name)) continue;
  const t0 = Date.now();
  try {
    results[name] = { ok: true, ...(await fn()), ms: Date.now() - t0 };
  } catch (e) {
    results[name] = { ok: false, error: String(e).split("\n")[0], ms: Date.now() - t0 };
  }
}
await browser.close();
console.log(JSON.stringify(results, null, 1));
