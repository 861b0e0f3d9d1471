// Scenario 4: the built-in demo PBX (no OUTBOUND_PROXY, no Kamailio), in each browser: an echo
// call hears its own 440 Hz tone back, and DTMF by SIP INFO on it is answered 200 by the gateway
// (it used to be sent back down the caller's WebSocket as `INFO  SIP/2.0`); then Alice (440 Hz)
// calls Bob (660 Hz) on Demo 2 pages in two browsers of the same kind.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, assertTone, waitIn, packetGrowth, sipResponses, until, BROWSERS } from "./harness.mjs";
import { aliceCallsBob } from "./flows.mjs";

for (const kind of BROWSERS) {
  test(`Demo PBX (no Kamailio): echo call with DTMF, and Alice calls Bob [${kind}]`, { timeout: 60000 }, (t) =>
    scenario(`demo-pbx-${kind}`, async (w) => {
      await w.gateway();
      assert.match(w.gw.text(), /demo PBX/i, "the gateway says it runs the demo PBX");

      await w.step("echo call: packets both ways, own 440 Hz tone back, INFO DTMF answered 200", async () => {
        const b = await w.browser(440, kind);
        try {
          const page = await w.page(b, "demo1", "/demo1.html?autostart=1&log=log");
          await waitIn(page, () => window.__demo1.callState === "active", null, 15000);
          const g = await packetGrowth(page, "__demo1", 2000);
          assert.ok(g.received >= 50 && g.sent >= 50, `echo packets in 2 s: received ${g.received}, sent ${g.sent}`);
          assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "demo PBX echo");
          for (const [key, sent] of [["#key-5", "5"], ["#key-hash", "5#"]]) {
            await page.click(key);
            await waitIn(page, (want) => window.__demo1.state.dtmfSent === want, sent, 5000);
          }
          const infoAnswers = () => sipResponses(w.consoleText()).filter((r) => r.endsWith("INFO"));
          await until(() => infoAnswers().length >= 2, 3000, "two INFO answers at the browser").catch(() => {});
          const infos = infoAnswers();
          assert.deepEqual(infos, ["200 INFO", "200 INFO"], `INFO responses the browser got: ${infos}`);
          assert.doesNotMatch(w.consoleText(), /error parsing first line/, "SIP.js parsed everything the gateway sent");
          assert.equal((await page.evaluate(() => window.__demo1.state)).callState, "active", "the call is still up");
          await page.click("#hangup");
          await waitIn(page, () => window.__demo1.callState === "ended", null, 5000);
          assert.equal((await page.evaluate(() => window.__demo1.state.lastCall)).endedBy, "local");
        } finally {
          await b.close();
        }
      });

      await aliceCallsBob(w, { aliceQuery: "alice_user=alice", bobQuery: "bob_user=bob", video: false, kinds: [kind, kind] });
    }, t));
}
