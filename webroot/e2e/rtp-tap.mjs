// An RTP tap between the gateway and a SIPp far end: the far end's SDP names the tap's port, the
// tap passes every packet on to SIPp's media port and SIPp's packets back to the gateway, and
// records what crossed towards SIPp: packets per payload type and the RFC 4733 events (one per
// key press: the event code of packets with the end bit, deduplicated by RTP timestamp).
import dgram from "node:dgram";

const EVENTS = "0123456789*#ABCD";

export class RtpTap {
  /** Listens on 127.0.0.1:`port`, relays to SIPp's media at 127.0.0.1:`farPort`. */
  static async start(port, farPort) {
    const tap = new RtpTap(farPort);
    await new Promise((resolve, reject) => {
      tap.sock.once("error", reject);
      tap.sock.bind(port, "127.0.0.1", resolve);
    });
    return tap;
  }

  constructor(farPort) {
    this.farPort = farPort;
    this.sock = dgram.createSocket("udp4");
    this.gateway = null; // where the gateway's packets come from (answers go back there)
    this.byPt = new Map(); // payload type -> packets towards SIPp
    this.events = []; // RFC 4733 key presses towards SIPp, in order
    this.endedTs = new Set();
    this.sock.on("message", (m, from) => {
      if (from.address === "127.0.0.1" && from.port === this.farPort) {
        if (this.gateway) this.sock.send(m, this.gateway.port, this.gateway.address);
        return;
      }
      this.gateway = { address: from.address, port: from.port };
      this.sock.send(m, this.farPort, "127.0.0.1");
      if (m.length < 12 || m[0] >> 6 !== 2) return;
      const pt = m[1] & 0x7f;
      if (pt >= 72 && pt <= 79) return; // RTCP on the RTP port
      this.byPt.set(pt, (this.byPt.get(pt) || 0) + 1);
      if (pt === this.telephoneEventPt && m.length >= 16) {
        const ts = m.readUInt32BE(4);
        const end = (m[13] & 0x80) !== 0;
        if (end && !this.endedTs.has(ts)) {
          this.endedTs.add(ts);
          this.events.push(EVENTS[m[12]] ?? `?${m[12]}`);
        }
      }
    });
  }

  /** The payload type of telephone-event on the wire (set by the test from the SDP). */
  telephoneEventPt = null;

  packets(pt) {
    return this.byPt.get(pt) || 0;
  }

  summary() {
    return { byPt: Object.fromEntries(this.byPt), events: this.events.join("") };
  }

  close() {
    return new Promise((r) => this.sock.close(r));
  }
}
