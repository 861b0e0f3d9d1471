// Scenario 5: the browser goes away mid-call; the SIP side (SIPp echo UAS via Kamailio) must get
// a BYE within 2 s. Two ways: the page is closed (its pagehide handler may still send BYE), and
// the whole browser is killed with SIGKILL (nothing is sent: the gateway must notice the
// WebSocket closing).
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, waitIn, packetGrowth, sleep, BROWSERS } from "./harness.mjs";

async function callEcho(w, b, tag) {
  const page = await w.page(b, tag, "/demo1.html?user=alice&password=alicePassword&target=echo&autostart=1&log=log");
  await waitIn(page, () => window.__demo1.callState === "active", null, 15000);
  const g = await packetGrowth(page, "__demo1", 1500);
  assert.ok(g.received >= 30 && g.sent >= 30, `${tag}: packets in 1.5 s: received ${g.received}, sent ${g.sent}`);
  return page;
}

/** ms until the SIPp log holds more than `before` BYE requests (bounded: 6 s). */
async function byeDelay(uas, before, t0) {
  for (let i = 0; i < 300; i++) {
    if ((uas.messages().match(/^BYE sip:/gm) || []).length > before) return Date.now() - t0;
    await sleep(20);
  }
  return Infinity;
}

for (const kind of BROWSERS) {
  test(`Browser page closed or killed mid-call: SIPp receives BYE within 2 s [${kind}]`, { timeout: 45000 }, () =>
    scenario(`page-closed-${kind}`, async (w) => {
      const echo = await w.echoUas("uas");
      const kport = await w.kamailioStart({ echoPort: echo.port });
      await w.gateway({ proxyPort: kport });
      const byes = () => (echo.proc.messages().match(/^BYE sip:/gm) || []).length;

      // 1. The page is closed.
      const b1 = await w.browser(440, kind);
      const p1 = await callEcho(w, b1, "closed");
      let n = byes();
      let t0 = Date.now();
      await p1.close();
      const closedMs = await byeDelay(echo.proc, n, t0);
      w.info(`page closed -> BYE at the SIP side after ${closedMs} ms`);
      assert.ok(closedMs <= 2000, `BYE ${closedMs} ms after the page was closed (limit 2000 ms)`);
      await b1.close();

      // 2. The browser process is killed: no pagehide, no BYE from the page.
      const b2 = await w.browser(440, kind);
      await callEcho(w, b2, "killed");
      n = byes();
      const pid = b2.pid;
      assert.ok(pid, "the browser's PID is known");
      t0 = Date.now();
      process.kill(pid, "SIGKILL");
      const killedMs = await byeDelay(echo.proc, n, t0);
      w.info(`browser killed -> BYE at the SIP side after ${killedMs} ms`);
      assert.ok(killedMs <= 2000, `BYE ${killedMs} ms after the browser was killed (limit 2000 ms)`);
    }));
}
