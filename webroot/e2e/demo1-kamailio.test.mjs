// Scenario 1: Demo 1 through Kamailio (registrar with digest auth) to a SIPp echo UAS behind an
// RTP tap, in each browser. Register (401 then 200), call echo, hear our own 440 Hz tone back
// (Chromium over PCMU; Firefox over G722, which it writes `G722/8000/1`), the tap sees that codec
// on the SIP side; DTMF reaches SIPp as INFO and then as RFC 4733 events (checked by the tap);
// hold and resume (media stops and resumes), hang up from the browser; then a second call to a
// SIPp-registered user "carol" whose UAS hangs up first. Each part is a step (subtest): a failing
// one is reported and the later ones still run.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, freePorts, assertTone, waitIn, packetGrowth, sipResponses, sleep, until, BROWSERS } from "./harness.mjs";

// What each browser's call to the echo negotiates (the echo answers with this codec only).
const CODEC = { chromium: { pt: 0, name: "PCMU/8000" }, firefox: { pt: 9, name: "G722/8000" } };

for (const kind of BROWSERS) {
test(`Demo 1 through Kamailio + SIPp echo [${kind}]`, { timeout: 90000 }, (t) =>
  scenario(`demo1-kamailio-${kind}`, async (w) => {
    const codec = CODEC[kind];
    const echo = await w.tappedEchoUas("uas", codec.pt, codec.name);
    const kport = await w.kamailioStart({ echoPort: echo.port });
    // carol: a SIPp UAS that hangs up 8 s after the ACK (room for the 2.5 s of measurements), registered at Kamailio by register.xml.
    const carolPort = await freePorts(1, ["udp"]);
    const carolMedia = await freePorts(4, ["udp"]);
    const carol = await w.sipp("carol", "uas-hangup.xml", ["-i", "127.0.0.1", "-p", String(carolPort), "-mi", "127.0.0.1",
      "-mp", String(carolMedia), "-rtp_echo", "-aa", "-m", "1", "-d", "8000"]);
    const regPort = await freePorts(1, ["udp"]);
    const reg = await w.sipp("carol-register", "register.xml", [`127.0.0.1:${kport}`, "-s", "carol", "-au", "carol", "-ap",
      "carolPassword", "-key", "contact_host", "127.0.0.1", "-key", "contact_port", String(carolPort), "-m", "1",
      "-i", "127.0.0.1", "-p", String(regPort), "-timeout", "10", "-timeout_error"]);
    assert.equal(await reg.waitExit(12000), 0, "SIPp registered carol at Kamailio");
    await w.gateway({ proxyPort: kport });

    const b = await w.browser(440, kind);
    const page = await w.page(b, "demo1", "/demo1.html?user=alice&password=alicePassword&target=echo&log=log");
    const st = () => page.evaluate(() => window.__demo1.state);
    const needActive = async () => {
      const s = await st();
      assert.equal(s?.callState, "active", `the call must be up for this step: ${JSON.stringify({ callState: s?.callState, lastCall: s?.lastCall })}`);
    };
    const reinvites = () => echo.proc.messages().split(/^INVITE sip:/m).slice(2);

    await w.step("register through the gateway: 401, then 200", async () => {
      await page.evaluate(() => window.__demo1.connect());
      await waitIn(page, () => window.__demo1.connected);
      await page.evaluate(() => window.__demo1.line.register());
      await waitIn(page, () => window.__demo1.registered, null, 10000);
      const regs = sipResponses(w.consoleText()).filter((r) => r.endsWith("REGISTER"));
      assert.deepEqual(regs.slice(0, 2), ["401 REGISTER", "200 REGISTER"], `REGISTER responses: ${regs}`);
    });

    await w.step(`call echo: packets both ways, own 440 Hz tone back over ${codec.name}`, async () => {
      await page.click("#call");
      await waitIn(page, () => window.__demo1.callState === "active", null, 10000);
      const g = await packetGrowth(page, "__demo1", 2000);
      assert.ok(g.received >= 50, `packets received in 2 s of call: ${g.received}`);
      assert.ok(g.sent >= 50, `packets sent in 2 s of call: ${g.sent}`);
      assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "echo through Kamailio + SIPp");
      assert.equal((await page.evaluate(() => window.__demo1.stats())).codec, codec.name);
      // The INVITE SIPp got offered the codec, and the SIP side carried it.
      const invite = echo.proc.messages().split(/^INVITE sip:/m)[1] || "";
      assert.match(invite, new RegExp(`a=rtpmap:${codec.pt} ${codec.name}`), "the SIP-side offer lists the codec");
      assert.ok(echo.tap.packets(codec.pt) >= 50, `packets of PT ${codec.pt} towards SIPp: ${JSON.stringify(echo.tap.summary())}`);
    });

    await w.step("DTMF 5 and # reach SIPp as INFO", async () => {
      await needActive();
      const infoAnswers = () => sipResponses(w.consoleText()).filter((r) => r.endsWith("INFO"));
      const answeredBefore = infoAnswers().length;
      await page.click("#key-5");
      await waitIn(page, () => window.__demo1.state.dtmfSent === "5", null, 5000);
      await page.click("#key-hash");
      await waitIn(page, () => window.__demo1.state.dtmfSent === "5#", null, 5000);
      await until(() => /^INFO sip:[^]*?Signal=\s*5[^]*?^INFO sip:[^]*?Signal=\s*#/m.test(echo.proc.messages()), 5000,
        "INFO with Signal=5 then Signal=# in the SIPp UAS's message log");
      // SIPp logs the INFO before its 200 has come back through Kamailio and the gateway.
      await until(() => infoAnswers().length >= answeredBefore + 2, 5000, "both INFOs answered at the browser");
      const infos = infoAnswers();
      assert.deepEqual(infos.slice(answeredBefore), ["200 INFO", "200 INFO"], `INFO responses the browser got: ${infos}`);
    });

    await w.step("DTMF 7 and * reach SIPp as RFC 4733 events", async () => {
      await needActive();
      const infosBefore = (echo.proc.messages().match(/^INFO sip:/gm) || []).length;
      const te = /^a=rtpmap:(\d+) telephone-event\/8000/m.exec(echo.proc.messages().split(/^INVITE sip:/m)[1] || "");
      assert.ok(te, "the SIP-side offer lists telephone-event/8000");
      echo.tap.telephoneEventPt = Number(te[1]);
      await page.evaluate(() => window.__demo1.line.setDtmfMode("rfc4733"));
      await page.click("#key-7");
      await waitIn(page, () => window.__demo1.state.dtmfSent === "5#7", null, 5000);
      await sleep(300); // the browser's DTMF sender plays tones one after another
      await page.click("#key-star");
      await waitIn(page, () => window.__demo1.state.dtmfSent === "5#7*", null, 5000);
      await until(() => echo.tap.events.join("").endsWith("7*"), 5000,
        `telephone-events 7 then * towards SIPp (tap: ${JSON.stringify(echo.tap.summary())})`);
      assert.equal(echo.tap.events.join(""), "7*", "no other events, none before the switch");
      assert.equal((echo.proc.messages().match(/^INFO sip:/gm) || []).length, infosBefore, "no INFO for RFC 4733 DTMF");
    });

    await w.step("hold: sendonly re-INVITE to SIP, received packets stop", async () => {
      await needActive();
      await page.click("#hold");
      await waitIn(page, () => !window.__demo1.state.holdPending, null, 5000);
      const s = await st();
      assert.equal(s.callState, "active", `call still up after hold: ${JSON.stringify({ callState: s.callState, lastCall: s.lastCall })}`);
      assert.equal(s.lastError, null, "no hold error");
      assert.equal(s.held, true, "held");
      await until(() => reinvites().length >= 1, 3000, "re-INVITE at the SIPp UAS");
      assert.match(reinvites()[0], /a=(sendonly|inactive)/, "hold re-INVITE towards SIP is sendonly/inactive");
      await sleep(500);
      const held = await packetGrowth(page, "__demo1", 2000);
      assert.ok(held.received <= 5, `packets received in 2 s on hold: ${held.received}`);
    });

    await w.step("resume: sendrecv re-INVITE, packets and tone again", async () => {
      await needActive();
      await page.click("#hold");
      await waitIn(page, () => !window.__demo1.state.holdPending, null, 5000);
      const s = await st();
      assert.equal(s.callState, "active", "call still up");
      assert.equal(s.lastError, null, "no resume error");
      assert.equal(s.held, false, "not held");
      await until(() => reinvites().length >= 2, 3000, "second re-INVITE (resume) at the SIPp UAS");
      assert.match(reinvites()[1], /a=sendrecv/, "resume re-INVITE towards SIP is sendrecv");
      await sleep(500);
      const resumed = await packetGrowth(page, "__demo1", 2000);
      assert.ok(resumed.received >= 50, `packets received in 2 s after resume: ${resumed.received}`);
      assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "echo after resume");
    });

    await w.step("hang up from the browser: SIPp gets BYE", async () => {
      await needActive();
      const byes = (echo.proc.messages().match(/^BYE sip:/gm) || []).length;
      await page.click("#hangup");
      await waitIn(page, () => window.__demo1.callState === "ended", null, 5000);
      assert.equal((await st()).lastCall.endedBy, "local");
      await until(() => (echo.proc.messages().match(/^BYE sip:/gm) || []).length > byes, 3000, "BYE at the SIPp echo UAS");
    });

    await w.step("second call, to carol: SIPp hangs up", async () => {
      // Whatever happened to the first call, start from no call.
      if (await page.evaluate(() => !!window.__demo1.line?.session)) {
        await page.evaluate(() => window.__demo1.hangup());
        await waitIn(page, () => !window.__demo1.line?.session, null, 5000);
      }
      await page.fill("#target", "carol");
      await page.click("#call");
      await waitIn(page, () => window.__demo1.callState === "active", null, 10000);
      const g = await packetGrowth(page, "__demo1", 1500);
      assert.ok(g.received >= 30, `packets received from carol in 1.5 s: ${g.received}`);
      assertTone(await page.evaluate(() => window.__toneFrequency(1000)), 440, "echo from carol's UAS");
      await waitIn(page, () => window.__demo1.callState === "ended", null, 10000);
      const last = (await st()).lastCall;
      assert.equal(last.endedBy, "remote", `second call ended by ${JSON.stringify(last)}`);
      assert.equal(await carol.waitExit(5000), 0, "carol's SIPp UAS: BYE answered 200");
    });
  }, t));
}
