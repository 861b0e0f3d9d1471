// Scenario 2: Demo 2 through Kamailio. Two browsers (Alice's microphone plays 440 Hz, Bob's
// 660 Hz), each on a Demo 2 page registering one side; Alice calls Bob, Bob answers
// automatically. Each hears the other's tone. Run with both browsers Chromium, both Firefox, and
// mixed both ways (a Firefox user calls a Chromium user, and back).
//
// The call crosses a SIP registrar, so each browser's bundle is split into plain audio and
// video RTP streams (two port pairs per plain leg) on the way out and merged back on the way in:
// Alice's and Bob's video must decode frames.
import { test } from "node:test";
import { scenario, BROWSERS } from "./harness.mjs";
import { aliceCallsBob } from "./flows.mjs";

const pairs = BROWSERS.flatMap((a) => BROWSERS.map((b) => [a, b]));
for (const kinds of pairs) {
  test(`Demo 2 through Kamailio: ${kinds[0]} Alice calls ${kinds[1]} Bob, tones both ways, video both ways`, { timeout: 50000 }, (t) =>
    scenario(`demo2-kamailio-${kinds.join("-")}`, async (w) => {
      const kport = await w.kamailioStart({ echoPort: 9 });
      await w.gateway({ proxyPort: kport });
      await aliceCallsBob(w, {
        aliceQuery: "alice_user=alice&alice_password=alicePassword",
        bobQuery: "bob_user=bob&bob_password=bobPassword",
        video: true,
        kinds,
      });
    }, t));
}
