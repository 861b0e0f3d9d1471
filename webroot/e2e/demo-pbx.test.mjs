// Scenario 4: the built-in demo PBX (no OUTBOUND_PROXY, no Kamailio): an echo call hears its
// own 440 Hz tone back; then Alice (440 Hz) calls Bob (660 Hz) on Demo 2 pages in two browsers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, assertTone, waitIn, packetGrowth } from "./harness.mjs";
import { aliceCallsBob } from "./flows.mjs";

test("Demo PBX (no Kamailio): echo call, and Alice calls Bob", { timeout: 50000 }, (t) =>
  scenario("demo-pbx", async (w) => {
    await w.gateway();
    assert.match(w.gw.text(), /demo PBX/i, "the gateway says it runs the demo PBX");

    await w.step("echo call: packets both ways, own 440 Hz tone back", async () => {
      const b = await w.browser(440);
      try {
        const page = await w.page(b, "demo1", "/demo1.html?autostart=1&log=log");
        await waitIn(page, () => window.__demo1.callState === "active", null, 15000);
        const g = await packetGrowth(page, "__demo1", 2000);
        assert.ok(g.received >= 50 && g.sent >= 50, `echo packets in 2 s: received ${g.received}, sent ${g.sent}`);
        assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "demo PBX echo");
        await page.click("#hangup");
        await waitIn(page, () => window.__demo1.callState === "ended", null, 5000);
        assert.equal((await page.evaluate(() => window.__demo1.state.lastCall)).endedBy, "local");
      } finally {
        await b.close();
      }
    });

    await aliceCallsBob(w, { aliceQuery: "alice_user=alice", bobQuery: "bob_user=bob", video: false });
  }, t));
