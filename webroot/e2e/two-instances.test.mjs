// Scaling out (issue 13, part): two gateway instances behind one Kamailio registrar. Each instance
// proxies its browsers' REGISTERs with its own Path, so a call for a user goes to the instance
// holding that user's WebSocket. Alice's page comes from instance A, Bob's from instance B; Alice
// calls Bob (A -> Kamailio -> lookup -> Path -> B): tones and video both ways. Then a SIPp UAC
// calls each user through Kamailio and reaches that user's instance (counted by each instance's
// /metrics), with audio both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import { scenario, freePorts, waitIn, packetGrowth, assertTone, until } from "./harness.mjs";
import { aliceCallsBob } from "./flows.mjs";

/** Calls started on `gw`, from its /metrics (every label set summed). */
async function callsStarted(w, gw) {
  const text = await w.metrics(gw);
  let n = 0;
  for (const l of text.split("\n")) {
    if (l.startsWith("webrtc_phone_calls_started_total")) n += Number(l.slice(l.lastIndexOf(" ") + 1));
  }
  return n;
}

test("Two gateway instances behind one Kamailio registrar: calls reach the instance holding the user", { timeout: 90000 }, (t) =>
  scenario("two-instances", async (w) => {
    const kport = await w.kamailioStart({ echoPort: 9 });
    const a = await w.gateway({ proxyPort: kport });
    const b = await w.gateway({ proxyPort: kport });
    assert.notEqual(a.ports.sip, b.ports.sip, "two instances, two SIP ports (two Paths)");

    const open = await aliceCallsBob(w, {
      aliceQuery: "alice_user=alice&alice_password=alicePassword&alice_autoanswer=1",
      bobQuery: "bob_user=bob&bob_password=bobPassword",
      video: true,
      bases: [a.base, b.base],
      keepOpen: true,
    });

    await w.step("Alice's call went out through A and came in through B", async () => {
      assert.equal(await callsStarted(w, a), 1, "instance A: Alice's outgoing call");
      assert.equal(await callsStarted(w, b), 1, "instance B: the call in to Bob");
      const reg = a.text().match(/Path: <sip:127\.0\.0\.1:(\d+);lr>/);
      assert.ok(reg, "A's REGISTER for Alice carried a Path");
    });

    for (const [user, page, gw, other, hook] of [
      ["alice", open.pa, a, b, "__demo2.alice"],
      ["bob", open.pb, b, a, "__demo2.bob"],
    ]) {
      await w.step(`SIPp calls ${user} through Kamailio: ${user}'s instance answers, audio both ways`, async () => {
        const [mine, theirs] = [await callsStarted(w, gw), await callsStarted(w, other)];
        const [up, mp] = [await freePorts(1, ["udp"]), await freePorts(4, ["udp"])];
        const uac = await w.sipp(`uac-${user}`, "uac.xml", [`127.0.0.1:${kport}`, "-s", user, "-m", "1", "-l", "1", "-d", "5000",
          "-i", "127.0.0.1", "-p", String(up), "-mi", "127.0.0.1", "-mp", String(mp), "-rtp_echo", "-timeout", "30", "-timeout_error"]);
        const who = user;
        await waitIn(page, (k) => window.__demo2[k].callState === "active", who, 10000);
        const g = await packetGrowth(page, hook, 1500);
        assert.ok(g.received >= 30 && g.sent >= 30, `${user}'s packets in 1.5 s: received ${g.received}, sent ${g.sent}`);
        const hz = user === "alice" ? 440 : 660;
        assertTone(await page.evaluate((k) => window.__toneFrequency(1500, k), who), hz, `${user} hears its own tone back from SIPp`);
        assert.equal(await uac.waitExit(15000), 0, "SIPp UAC: answered, BYE answered 200");
        assert.equal(await callsStarted(w, gw), mine + 1, `${user}'s instance took the call`);
        assert.equal(await callsStarted(w, other), theirs, "the other instance saw nothing of it");
      });
    }
    await until(async () => (await open.pa.evaluate(() => window.__demo2.alice.callState)) !== "active", 5000, "alice's call ended");
  }, t));
