// Scenario 3: Phone page. The browser registers as alice through the gateway at Kamailio; a SIPp
// UAC calls alice via Kamailio; the page rings, the test clicks Answer, audio flows both ways
// (SIPp echoes the browser's 440 Hz tone back), SIPp hangs up.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, freePorts, assertTone, waitIn, packetGrowth, BROWSERS } from "./harness.mjs";

for (const kind of BROWSERS) {
  test(`Phone page: SIPp calls the registered user through Kamailio, answer, audio both ways, SIPp hangs up [${kind}]`, { timeout: 40000 }, () =>
    scenario(`phone-inbound-${kind}`, async (w) => {
      const kport = await w.kamailioStart({ echoPort: 9 });
      await w.gateway({ proxyPort: kport });
      const b = await w.browser(440, kind);
      const page = await w.page(b, "phone", "/phone.html?user=alice&password=alicePassword&autostart=1&remember=0&aec=0&log=log");
      await waitIn(page, () => window.__phone.registered, null, 10000);

      const [up, mp] = [await freePorts(1, ["udp"]), await freePorts(4, ["udp"])];
      const uac = await w.sipp("uac", "uac.xml", [`127.0.0.1:${kport}`, "-s", "alice", "-m", "1", "-l", "1", "-d", "8000",
        "-i", "127.0.0.1", "-p", String(up), "-mi", "127.0.0.1", "-mp", String(mp), "-rtp_echo", "-timeout", "40", "-timeout_error"]);

      // Rings: incoming state, the Answer panel is shown with the caller.
      await waitIn(page, () => window.__phone.callState === "incoming", null, 10000);
      assert.ok(await page.isVisible("#incoming"), "#incoming visible while ringing");
      assert.match(await page.textContent("#incoming-caller"), /sipp/, "caller shown");
      await page.waitForTimeout(500);
      await page.click("#answer");
      await waitIn(page, () => window.__phone.callState === "active", null, 10000);

      // Both ways: the browser sends, SIPp echoes, the browser receives its own tone.
      const g = await packetGrowth(page, "__phone", 2000);
      assert.ok(g.sent >= 50, `packets sent in 2 s: ${g.sent}`);
      assert.ok(g.received >= 50, `packets received in 2 s: ${g.received}`);
      assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "browser -> SIPp -> browser");

      // SIPp hangs up (-d 8000 after its ACK).
      await waitIn(page, () => window.__phone.callState === "ended", null, 15000);
      assert.equal((await page.evaluate(() => window.__phone.state.lastCall)).endedBy, "remote");
      assert.equal(await uac.waitExit(5000), 0, "SIPp UAC: call completed, BYE answered 200");
    }));
}
