// baresip's loudspeaker in the e2e tests: ALSA's "file" plugin pipes what baresip plays (raw
// S16LE, 48 kHz, mono) into this process, which appends it to the file argv[2] no faster than
// real time. The pipe's back-pressure paces baresip's player (ALSA's null device alone would let
// it spin), so the file's growth follows the call's timeline: silence while nothing arrives.
// Exits when baresip closes the device (each player restart starts a new one, appending).
import fs from "node:fs";

const BYTES_PER_MS = 96; // 48000 samples/s * 2 bytes / 1000
const out = fs.openSync(process.argv[2], "a");
const chunk = Buffer.alloc(20 * BYTES_PER_MS);
const nap = new Int32Array(new SharedArrayBuffer(4));
const t0 = Date.now();
let bytes = 0;
for (;;) {
  let n;
  try {
    n = fs.readSync(0, chunk, 0, chunk.length);
  } catch (e) {
    if (e.code === "EAGAIN") {
      Atomics.wait(nap, 0, 0, 5);
      continue;
    }
    if (e.code === "EOF") break;
    throw e;
  }
  if (n === 0) break;
  fs.writeSync(out, chunk, 0, n);
  bytes += n;
  const ahead = t0 + bytes / BYTES_PER_MS - Date.now();
  if (ahead > 0) Atomics.wait(nap, 0, 0, ahead);
}
