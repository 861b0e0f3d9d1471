// Scenario 7: baresip, a real SIP phone (neither SIPp's scripts nor Kamailio), against a browser
// through Kamailio and the gateway. baresip (Debian, headless, driven over ctrl_tcp: see
// baresip.mjs) registers as carol at Kamailio with digest auth; its microphone plays 880 Hz and
// what it hears is checked by frequency. The browser (Phone page, microphone 440 Hz; each of
// E2E_BROWSERS in turn) registers as alice through the gateway (OUTBOUND_PROXY = Kamailio).
//   baresip calls alice (its own codec order: opus, G722, PCMU, PCMA), the page answers, each
//   hears the other; hold and resume from baresip (re-INVITEs from the SIP side), then from the
//   browser; DTMF both ways (SIP INFO from the browser, RFC 4733 from baresip); baresip hangs up.
//   alice calls carol: baresip answers early (183 with SDP), then accepts; the browser hangs up.
//   (baresip 1.0 has no 100rel: it neither requires nor supports PRACK, so none is exchanged. The
//   Phone page does not play early media: SIP.js applies a 183's SDP only with earlyMedia on.)
// Each part is a step (subtest): a failing one is reported and the later ones still run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, assertTone, waitIn, packetGrowth, sipResponses, sleep, until, BROWSERS } from "./harness.mjs";
import { Baresip, dtmfHeard } from "./baresip.mjs";

const BROWSER_HZ = 440;
const BARESIP_HZ = 880;

for (const kind of BROWSERS) {
  test(`baresip (a real SIP phone) and a browser through Kamailio: calls both ways, hold, DTMF, early media [${kind}]`, { timeout: 120000 }, (t) =>
    scenario(`baresip-${kind}`, async (w) => {
      const kport = await w.kamailioStart({ echoPort: 9 });
      await w.gateway({ proxyPort: kport });
      const carol = await Baresip.start(w, { user: "carol", password: "carolPassword", kport, hz: BARESIP_HZ, answermode: "early" });
      const b = await w.browser(BROWSER_HZ, kind);
      const page = await w.page(b, "phone", "/phone.html?user=alice&password=alicePassword&autostart=1&remember=0&aec=0&log=log");
      const st = () => page.evaluate(() => window.__phone.state);
      const needActive = async () => {
        const s = await st();
        assert.equal(s?.callState, "active", `the call must be up for this step: ${JSON.stringify({ callState: s?.callState, lastCall: s?.lastCall })}`);
      };
      /** Both directions of an established call: packets, and each side hears the other's tone. */
      const tonesBothWays = async (what) => {
        const [g, heard] = await Promise.all([packetGrowth(page, "__phone", 2000), carol.hears(2000)]);
        assert.ok(g.sent >= 50, `${what}: browser sent ${g.sent} audio packets in 2 s`);
        assert.ok(g.received >= 50, `${what}: browser received ${g.received} audio packets from baresip in 2 s`);
        assertTone(heard.hz, BROWSER_HZ, `${what}: baresip hears alice (${JSON.stringify(heard)})`);
        assertTone(await page.evaluate(() => window.__toneFrequency(1500)), BARESIP_HZ, `${what}: alice hears baresip`);
      };

      await w.step("register: baresip as carol at Kamailio (digest 401), the browser as alice through the gateway", async () => {
        await carol.registered();
        assert.match(carol.log(), /^SIP\/2\.0 401 Unauthorized/m, "baresip was challenged");
        assert.match(carol.log(), /^Authorization: Digest username="carol"/m, "baresip answered the challenge");
        await waitIn(page, () => window.__phone.registered, null, 10000);
      });

      await w.step("baresip calls alice: the page answers, opus (baresip's first codec), tones both ways", async () => {
        await carol.cmd("dial", "sip:alice@127.0.0.1");
        await waitIn(page, () => window.__phone.callState === "incoming", null, 10000);
        await page.click("#answer");
        await waitIn(page, () => window.__phone.callState === "active", null, 10000);
        await carol.waitEvent("CALL_ESTABLISHED", 5000);
        assert.equal((await page.evaluate(() => window.__phone.stats())).audio.sendCodec, "opus/48000", "codec: baresip offers opus first, the gateway passes opus");
        await tonesBothWays("baresip -> alice");
      });

      await w.step("hold and resume from baresip (re-INVITEs from the SIP side): media stops both ways, then resumes", async () => {
        await needActive();
        await carol.cmd("hold");
        await until(() => /^INVITE sip:[^]*?^a=sendonly/m.test(carol.log().split(/cmd='hold'/).pop()), 3000, "baresip's hold re-INVITE (a=sendonly)");
        await sleep(1000);
        const [held, heard] = await Promise.all([packetGrowth(page, "__phone", 2000), carol.hears(2000)]);
        assert.ok(held.received <= 5, `browser received ${held.received} packets in 2 s while baresip holds`);
        assert.ok(held.sent <= 5, `browser sent ${held.sent} packets in 2 s while held (it must answer recvonly)`);
        assert.equal(heard.hz, 0, `baresip hears nothing while it holds: ${JSON.stringify(heard)}`);
        await carol.cmd("resume");
        await sleep(1000);
        await tonesBothWays("after baresip resumed");
      });

      await w.step("hold and resume from the browser: media stops both ways, then resumes", async () => {
        await needActive();
        await page.click("#hold");
        await waitIn(page, () => !window.__phone.state.holdPending, null, 5000);
        let s = await st();
        assert.equal(s.lastError, null, "no hold error");
        assert.equal(s.held, true, "held");
        await sleep(1000);
        const [held, heard] = await Promise.all([packetGrowth(page, "__phone", 2000), carol.hears(2000)]);
        assert.ok(held.received <= 5, `browser received ${held.received} packets in 2 s while holding`);
        assert.equal(heard.hz, 0, `baresip hears nothing while alice holds: ${JSON.stringify(heard)}`);
        await page.click("#hold");
        await waitIn(page, () => !window.__phone.state.holdPending, null, 5000);
        s = await st();
        assert.equal(s.lastError, null, "no resume error");
        assert.equal(s.held, false, "resumed");
        await sleep(1000);
        await tonesBothWays("after alice resumed");
      });

      await w.step("DTMF from the browser (SIP INFO) reaches baresip", async () => {
        await needActive();
        const n = carol.events.length;
        await page.click("#key-5");
        await waitIn(page, () => window.__phone.state.dtmfSent === "5", null, 5000);
        await page.click("#key-hash");
        await waitIn(page, () => window.__phone.state.dtmfSent === "5#", null, 5000);
        await until(() => carol.eventsOf("CALL_DTMF_START", n).map((e) => e.param).join("") === "5#", 5000,
          `baresip's CALL_DTMF_START events 5 then # (got ${JSON.stringify(carol.eventsOf("CALL_DTMF_START", n).map((e) => e.param))})`);
        assert.match(carol.log(), /^INFO sip:[^]*?Signal=5[^]*?call: received DTMF: '5'/m, "baresip received the 5 as INFO");
      });

      await w.step("DTMF from baresip (RFC 4733) is played in the browser", async () => {
        await needActive();
        const before = await dtmfHeard(page, 1000);
        assert.equal(before.key, null, `no DTMF before baresip presses a key: ${JSON.stringify(before)}`);
        await carol.pressKey("1");
        let heard;
        try {
          heard = await dtmfHeard(page, 1500);
        } finally {
          await carol.releaseKey();
        }
        assert.equal(heard.key, "1", `the browser plays the 1 (697 + 1209 Hz): ${JSON.stringify(heard)}`);
        assert.ok(heard.frames >= heard.total / 2, `the 1 heard for most of the 1.5 s it was held: ${JSON.stringify(heard)}`);
      });

      await w.step("baresip hangs up: the browser sees it", async () => {
        await needActive();
        await carol.cmd("hangup");
        await waitIn(page, () => window.__phone.callState === "ended", null, 5000);
        assert.equal((await st()).lastCall.endedBy, "remote");
      });

      await w.step("alice calls carol: baresip answers early (183 with SDP), then accepts; tones both ways", async () => {
        const n = carol.events.length;
        const responses = sipResponses(w.consoleText()).length;
        const logAt = carol.log().length;
        await page.evaluate(() => window.__phone.call("carol"));
        // (baresip 1.0 sends no CALL_INCOMING event in early answer mode: its SIP trace tells.)
        await until(() => /^SIP\/2\.0 183 Session Progress[^]*?^m=audio /m.test(carol.log().slice(logAt)), 10000, "baresip sends 183 with SDP");
        await until(() => sipResponses(w.consoleText()).slice(responses).includes("183 INVITE"), 3000, "the 183 reaches the browser");
        const got183 = w.consoleText().split(/Received WebSocket text message:/).find((m) => /^\s*SIP\/2\.0 183 /.test(m)) || "";
        assert.match(got183, /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /m, "the browser's 183 carries baresip's early SDP, in WebRTC form");
        assert.equal(await page.evaluate(() => window.__phone.callState), "ringing", "the browser rings while baresip's 183 is the answer so far");
        await sleep(500);
        await carol.cmd("accept");
        await waitIn(page, () => window.__phone.callState === "active", null, 10000);
        await carol.waitEvent("CALL_ESTABLISHED", 5000, n);
        await tonesBothWays("alice -> baresip");
      });

      await w.step("the browser hangs up: baresip sees it", async () => {
        await needActive();
        const n = carol.events.length;
        await page.click("#hangup");
        await waitIn(page, () => window.__phone.callState === "ended", null, 5000);
        assert.equal((await st()).lastCall.endedBy, "local");
        await carol.waitEvent("CALL_CLOSED", 5000, n);
      });
    }, t));
}
