// Issue 16: Demo 1's echo call through an unchanged Kamailio WSS edge (bench/compare/edge.cfg, the
// comparison stack's config with its rtpengine module) whose rtpengine_sock points at our media
// node (webrtc-phone --mode media), in each browser. The page registers through the edge at the
// registrar (401 then 200) and calls the SIPp echo behind an RTP tap: the browser hears its own
// 440 Hz tone back, the tap sees the codec on the SIP side, the node counted the call and forgets
// it after the hang-up. Our gateway only serves the page here: SIP goes to the edge
// (`server=wss://…` on the page), media to the node.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { scenario, freePorts, assertTone, waitIn, packetGrowth, sleep, until, metricValue, Proc, GATEWAY_BIN, REPO, BROWSERS } from "./harness.mjs";

const CODEC = { chromium: { pt: 0, name: "PCMU/8000" }, firefox: { pt: 9, name: "G722/8000" } };

async function nodeMetrics(port) {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  return r.text();
}

for (const kind of BROWSERS) {
test(`Demo 1 echo through Kamailio + our engine over ng [${kind}]`, { timeout: 90000 }, (t) =>
  scenario(`ng-kamailio-${kind}`, async (w) => {
    const codec = CODEC[kind];
    const echo = await w.tappedEchoUas("uas", codec.pt, codec.name);
    const kport = await w.kamailioStart({ echoPort: echo.port });

    // Our media node on loopback.
    const [ng, metricsPort] = [await freePorts(1, ["udp"]), await freePorts(1, ["tcp"])];
    const rtp = await freePorts(100, ["udp"]);
    const node = new Proc("node", GATEWAY_BIN, ["--mode", "media", "--ng-listen", `127.0.0.1:${ng}`,
      "--metrics-address", `127.0.0.1:${metricsPort}`, "--bind", "127.0.0.1", "--min-rtp-port", String(rtp),
      "--max-rtp-port", String(rtp + 99), "--media-threads", "1"], { logFile: path.join(w.dir, "node.log") });
    w.procs.push(node);
    await node.waitLine("ng listening", 15000);

    // The edge: the comparison stack's config, only its ports, certificate and rtpengine_sock set.
    const cert = path.join(w.dir, "edge-cert.pem");
    const key = path.join(w.dir, "edge-key.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
    const [edgeUdp, edgeWs, edgeWss] = [await freePorts(1, ["udp"]), await freePorts(1, ["tcp"]), await freePorts(1, ["tcp"])];
    await w.kamailioStart({
      echoPort: echo.port,
      cfg: path.join(REPO, "bench/compare/edge.cfg"),
      port: edgeUdp,
      defines: [`EDGE_UDP_PORT=${edgeUdp}`, `EDGE_WS_PORT=${edgeWs}`, `EDGE_WSS_PORT=${edgeWss}`,
        `REGISTRAR_URI="sip:127.0.0.1:${kport}"`, `SIP_SIDE_URI="sip:127.0.0.1:${echo.port}"`,
        `RTPENGINE_SOCK="udp:127.0.0.1:${ng}"`, `TLS_CERT="${cert}"`, `TLS_KEY="${key}"`],
    });
    await until(() => /rtpengine instance <udp:127\.0\.0\.1:\d+> found/.test(w.kamailio.text()), 10000,
      "the edge found our node (its ng ping answered pong)");

    // Our gateway serves the page only.
    await w.gateway();
    const b = await w.browser(440, kind);
    const server = encodeURIComponent(`wss://127.0.0.1:${edgeWss}/`);
    const page = await w.page(b, "demo1", `/demo1.html?user=alice&password=alicePassword&target=echo&log=log&server=${server}`);

    await w.step("register through the edge: 200", async () => {
      await page.evaluate(() => window.__demo1.connect());
      await waitIn(page, () => window.__demo1.connected, null, 10000);
      await page.evaluate(() => window.__demo1.line.register());
      await waitIn(page, () => window.__demo1.registered, null, 10000);
    });

    await w.step(`call echo: own 440 Hz tone back over ${codec.name}, media through our node`, async () => {
      await page.click("#call");
      await waitIn(page, () => window.__demo1.callState === "active", null, 10000);
      const g = await packetGrowth(page, "__demo1", 2000);
      assert.ok(g.received >= 50, `packets received in 2 s of call: ${g.received}`);
      assert.ok(g.sent >= 50, `packets sent in 2 s of call: ${g.sent}`);
      assertTone(await page.evaluate(() => window.__toneFrequency(1500)), 440, "echo through Kamailio + our node");
      assert.equal((await page.evaluate(() => window.__demo1.stats())).codec, codec.name);
      assert.ok(echo.tap.packets(codec.pt) >= 50, `packets of PT ${codec.pt} towards SIPp: ${JSON.stringify(echo.tap.summary())}`);
      const m = await nodeMetrics(metricsPort);
      assert.equal(metricValue(m, "webrtc_phone_ng_calls_created_total"), 1, "the node made the call");
      assert.equal(metricValue(m, "webrtc_phone_ng_calls_active"), 1);
      assert.ok((metricValue(m, 'webrtc_phone_ng_requests_total{command="offer",result="ok"}') ?? 0) >= 1);
    });

    await w.step("hang up: the edge deletes the call on our node", async () => {
      await page.evaluate(() => window.__demo1.hangup());
      await waitIn(page, () => window.__demo1.callState !== "active", null, 10000);
      await until(async () => metricValue(await nodeMetrics(metricsPort), "webrtc_phone_ng_calls_active") === 0, 10000,
        "the node's call deleted");
      const m = await nodeMetrics(metricsPort);
      assert.ok((metricValue(m, 'webrtc_phone_ng_requests_total{command="delete",result="ok"}') ?? 0) >= 1);
    });
    await sleep(100);
  }, t));
}
