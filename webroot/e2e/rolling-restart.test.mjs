// Scaling out (issue 13, part): a rolling restart of one of two instances behind Kamailio
// (deploy/kamailio/scale-out.cfg: registrar with Path + the dispatcher probing each instance
// with OPTIONS). Alice's Phone page is on instance A, Bob's on B; SIPp calls Alice (through
// Kamailio, to A). SIGTERM to A during that call: A's OPTIONS turn 503 and the dispatcher marks A
// inactive; a new call for Alice gets 480 at once (Kamailio drops the branch to A); a new call for
// Bob goes to B; Alice's call goes on with media to SIPp's BYE; A exits 0; A restarts, the
// dispatcher marks it active, and a user on A takes calls again.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { scenario, freePorts, waitIn, packetGrowth, assertTone, REPO } from "./harness.mjs";

const SCALE_OUT_CFG = path.join(REPO, "deploy/kamailio/scale-out.cfg");

test("Rolling restart of one instance behind Kamailio's dispatcher", { timeout: 120000 }, (t) =>
  scenario("rolling-restart", async (w) => {
    const kport = await freePorts(1, ["udp"]);
    const a = await w.gateway({ proxyPort: kport, extraEnv: { DRAIN_TIMEOUT: "30" } });
    const b = await w.gateway({ proxyPort: kport });
    const list = path.join(w.dir, "dispatcher.list");
    fs.writeFileSync(list, `1 sip:127.0.0.1:${a.ports.sip}\n1 sip:127.0.0.1:${b.ports.sip}\n`);
    await w.kamailioStart({ echoPort: 9, cfg: SCALE_OUT_CFG, port: kport, defines: [`DS_LIST="${list}"`, "DS_PING=1"] });
    const kam = w.kamailio;
    const instA = `sip:127.0.0.1:${a.ports.sip}`;

    const phone = async (browser, gw, user) => {
      const page = await w.page(browser, user,
        `/phone.html?user=${user}&password=${user}Password&autostart=1&autoanswer=1&remember=0&aec=0&log=log`, gw.base);
      await waitIn(page, () => window.__phone.registered, null, 10000);
      return page;
    };
    const sippCall = async (tag, user, holdMs) => {
      const [up, mp] = [await freePorts(1, ["udp"]), await freePorts(4, ["udp"])];
      return w.sipp(tag, "uac.xml", [`127.0.0.1:${kport}`, "-s", user, "-m", "1", "-l", "1", "-d", String(holdMs),
        "-i", "127.0.0.1", "-p", String(up), "-mi", "127.0.0.1", "-mp", String(mp), "-rtp_echo", "-timeout", "30", "-timeout_error"]);
    };

    const ba = await w.browser(440);
    const bb = await w.browser(660);
    const alice = await phone(ba, a, "alice");
    const bob = await phone(bb, b, "bob");

    let first;
    await w.step("SIPp calls Alice on A: up, audio both ways", async () => {
      first = await sippCall("uac-alice-1", "alice", 12000);
      await waitIn(alice, () => window.__phone.callState === "active", null, 10000);
      const g = await packetGrowth(alice, "__phone", 1500);
      assert.ok(g.received >= 30 && g.sent >= 30, `Alice's packets in 1.5 s: ${g.received} in, ${g.sent} out`);
    });

    await w.step("SIGTERM to A: the dispatcher marks A inactive", async () => {
      process.kill(a.pid, "SIGTERM");
      const t0 = Date.now();
      await kam.waitLine(`instance ${instA} down`, 5000);
      w.info(`A marked inactive by Kamailio's dispatcher ${Date.now() - t0} ms after SIGTERM`);
      assert.ok(a.running, "A is still running (draining its call)");
    });

    await w.step("a new call for Alice gets 480 at once (no branch to A)", async () => {
      const t0 = Date.now();
      const uac = await sippCall("uac-alice-2", "alice", 1000);
      const code = await uac.waitExit(10000);
      assert.notEqual(code, 0, "the call failed");
      assert.match(uac.messages(), /SIP\/2\.0 480/, "Kamailio answered 480");
      assert.ok(Date.now() - t0 < 5000, `answered within ${Date.now() - t0} ms`);
      assert.match(kam.text(), new RegExp(`instance ${instA} is inactive, branch to`), "the branch to A was dropped");
    });

    await w.step("a new call for Bob goes to B: audio both ways", async () => {
      const uac = await sippCall("uac-bob", "bob", 3000);
      await waitIn(bob, () => window.__phone.callState === "active", null, 10000);
      assertTone(await bob.evaluate(() => window.__toneFrequency(1500)), 660, "Bob hears his tone back from SIPp");
      assert.equal(await uac.waitExit(15000), 0, "SIPp's call to Bob completed");
    });

    await w.step("Alice's call on the draining A keeps its media to SIPp's BYE; A exits 0", async () => {
      const g = await packetGrowth(alice, "__phone", 1500);
      assert.ok(g.received >= 30 && g.sent >= 30, `Alice's packets while A drains: ${g.received} in, ${g.sent} out`);
      await waitIn(alice, () => window.__phone.callState === "ended", null, 15000);
      assert.equal((await alice.evaluate(() => window.__phone.state.lastCall)).endedBy, "remote");
      assert.equal(await first.waitExit(5000), 0, "SIPp's first call to Alice completed (BYE answered 200)");
      assert.equal(await a.waitExit(10000), 0, "A exits 0 once its call is over");
    });

    await w.step("A restarts: the dispatcher marks it active, and a user on A takes calls again", async () => {
      await ba.close();
      const a2 = await w.restartGateway(a);
      await kam.waitLine(`instance ${instA} up`, 5000);
      const b3 = await w.browser(440);
      const alice2 = await phone(b3, a2, "alice");
      const uac = await sippCall("uac-alice-3", "alice", 3000);
      await waitIn(alice2, () => window.__phone.callState === "active", null, 10000);
      const g = await packetGrowth(alice2, "__phone", 1500);
      assert.ok(g.received >= 30 && g.sent >= 30, `Alice's packets on the restarted A: ${g.received} in, ${g.sent} out`);
      assert.equal(await uac.waitExit(15000), 0, "SIPp's call to Alice on the restarted A completed");
    });
  }, t));
