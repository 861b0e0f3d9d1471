// Scenario 2: Demo 2 through Kamailio. Two browsers (Alice's microphone plays 440 Hz, Bob's
// 660 Hz), each on a Demo 2 page registering one side; Alice calls Bob, Bob answers
// automatically. Each hears the other's tone.
//
// Known gap: Bob's video does not decode through Kamailio. A call that crosses a SIP registrar
// is bridged to plain RTP, and the gateway's plain legs carry one media section (audio); the
// video section is answered with port 0. Through the built-in demo PBX (demo-pbx.test.mjs) the
// two browsers are bridged WebRTC to WebRTC and Bob's video does decode. The video step here
// runs when E2E_KNOWN_GAPS=1 and fails until plain legs carry video.
import { test } from "node:test";
import { scenario } from "./harness.mjs";
import { aliceCallsBob } from "./flows.mjs";

const video = process.env.E2E_KNOWN_GAPS === "1";

test(`Demo 2 through Kamailio: Alice calls Bob, tones both ways${video ? ", Bob decodes video" : ""}`, { timeout: 50000 }, (t) =>
  scenario("demo2-kamailio", async (w) => {
    const kport = await w.kamailioStart({ echoPort: 9 });
    await w.gateway({ proxyPort: kport });
    await aliceCallsBob(w, {
      aliceQuery: "alice_user=alice&alice_password=alicePassword",
      bobQuery: "bob_user=bob&bob_password=bobPassword",
      video,
    });
  }, t));
