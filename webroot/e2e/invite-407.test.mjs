// Scenario 6: Kamailio challenges INVITEs from subscribers with 407 (WITH_INVITE_AUTH); the
// browser's call to the SIPp echo completes after the challenge and media flows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, assertTone, waitIn, packetGrowth, sipResponses, until } from "./harness.mjs";

test("A call challenged with 407 by the registrar completes", { timeout: 40000 }, () =>
  scenario("invite-407", async (w) => {
    const echo = await w.echoUas("uas");
    const kport = await w.kamailioStart({ echoPort: echo.port, defines: ["WITH_INVITE_AUTH"] });
    await w.gateway({ proxyPort: kport });
    const b = await w.browser(440);
    const page = await w.page(b, "demo1", "/demo1.html?user=alice&password=alicePassword&target=echo&autostart=1&log=log");
    await waitIn(page, () => window.__demo1.callState === "active", null, 15000);
    const invites = sipResponses(w.consoleText()).filter((r) => r.endsWith("INVITE"));
    assert.ok(invites.includes("407 INVITE"), `the browser saw the 407: ${invites}`);
    assert.equal(invites[invites.length - 1], "200 INVITE", `INVITE responses: ${invites}`);
    await until(() => /Proxy-Authorization: Digest/.test(w.consoleText()), 1000, "INVITE re-sent with Proxy-Authorization");
    assert.match(echo.proc.messages(), /INVITE sip:echo@/, "the INVITE reached the SIPp UAS");

    const g = await packetGrowth(page, "__demo1", 2000);
    assert.ok(g.received >= 50 && g.sent >= 50, `packets in 2 s: received ${g.received}, sent ${g.sent}`);
    assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "echo after the 407");
    await page.click("#hangup");
    await waitIn(page, () => window.__demo1.callState === "ended", null, 5000);
    await until(() => /BYE sip:/.test(echo.proc.messages()), 3000, "BYE at the SIPp UAS");
  }));
