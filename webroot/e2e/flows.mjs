// Flows shared by several scenarios.
import assert from "node:assert/strict";
import { assertTone, waitIn, packetGrowth, stats, until } from "./harness.mjs";

/**
 * Two browsers of `kinds` (Alice's microphone plays 440 Hz, Bob's 660 Hz), each on a Demo 2 page that
 * registers one side; Alice calls Bob, Bob answers automatically. Each must hear the other's
 * tone; with `video`, both remote <video> elements must decode frames. Alice hangs up. Steps of `w`.
 * `bases`: the gateways Alice's and Bob's pages come from (and register through); `keepOpen`:
 * leave the browsers and pages open and return them.
 */
export async function aliceCallsBob(w, {
  aliceQuery, bobQuery, video = true, prefix = "", kinds = ["chromium", "chromium"], bases = [w.base, w.base], keepOpen = false,
}) {
  const ba = await w.browser(440, kinds[0]);
  const bb = await w.browser(660, kinds[1]);
  const pa = await w.page(ba, "alice", `/demo2.html?${aliceQuery}&log=log`, bases[0]);
  const pb = await w.page(bb, "bob", `/demo2.html?${bobQuery}&bob_autoanswer=1&log=log`, bases[1]);

  await w.step(`${prefix}Alice and Bob register`, async () => {
    await Promise.all([pa.evaluate(() => window.__demo2.alice.register()), pb.evaluate(() => window.__demo2.bob.register())]);
    await waitIn(pa, () => window.__demo2.alice.registered, null, 10000);
    await waitIn(pb, () => window.__demo2.bob.registered, null, 10000);
  });

  await w.step(`${prefix}Alice calls Bob: each hears the other's tone`, async () => {
    await pa.evaluate(() => window.__demo2.alice.call());
    await waitIn(pb, () => window.__demo2.bob.callState === "active", null, 10000);
    await waitIn(pa, () => window.__demo2.alice.callState === "active", null, 10000);
    const [ga, gb] = await Promise.all([packetGrowth(pa, "__demo2.alice", 2000), packetGrowth(pb, "__demo2.bob", 2000)]);
    assert.ok(ga.received >= 50 && ga.sent >= 50, `Alice's audio packets in 2 s: received ${ga.received}, sent ${ga.sent}`);
    assert.ok(gb.received >= 50 && gb.sent >= 50, `Bob's audio packets in 2 s: received ${gb.received}, sent ${gb.sent}`);
    const [aliceHz, bobHz] = await Promise.all([
      pa.evaluate(() => window.__toneFrequency(1500, "alice")),
      pb.evaluate(() => window.__toneFrequency(1500, "bob")),
    ]);
    assertTone(aliceHz, 660, "Alice hears Bob");
    assertTone(bobHz, 440, "Bob hears Alice");
  });

  if (video) {
    await w.step(`${prefix}Bob's and Alice's video decode frames`, async () => {
      for (const [page, who] of [[pb, "bob"], [pa, "alice"]]) {
        const v = await until(async () => {
          const s = await stats(page, `__demo2.${who}`);
          return s.video && s.video.framesDecoded > 0 ? s.video : null;
        }, 8000, `${who}'s video decodes frames (inbound-rtp video framesDecoded > 0)`, 250).catch(async (e) => {
          const s = await stats(pb, "__demo2.bob");
          const sa = await stats(pa, "__demo2.alice");
          throw new Error(`${e.message}; Bob video ${JSON.stringify(s.video)}; Alice video ${JSON.stringify(sa.video)}`);
        });
        assert.ok(v.framesDecoded > 0, `${who}'s framesDecoded ${v.framesDecoded}`);
        const dims = await page.evaluate((k) => ({ w: window.__demo2[k].remoteVideo.videoWidth, h: window.__demo2[k].remoteVideo.videoHeight }), who);
        assert.ok(dims.w > 0 && dims.h > 0, `${who}'s remote <video> size ${dims.w}x${dims.h}`);
      }
    });
  }

  await w.step(`${prefix}Alice hangs up, Bob sees it`, async () => {
    assert.equal(await pa.evaluate(() => window.__demo2.alice.callState), "active", "the call is still up to hang up");
    await pa.evaluate(() => window.__demo2.alice.hangup());
    await waitIn(pb, () => window.__demo2.bob.callState === "ended", null, 5000);
    assert.equal((await pb.evaluate(() => window.__demo2.bob.state.lastCall)).endedBy, "remote");
    assert.equal((await pa.evaluate(() => window.__demo2.alice.state.lastCall)).endedBy, "local");
  });
  if (keepOpen) return { pa, pb, ba, bb };
  await ba.close();
  await bb.close();
  return null;
}
