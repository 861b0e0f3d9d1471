#!/usr/bin/env bash
# Call setup rate: the load generator offers R new calls per second for S seconds (each a new
# WSS connection, INVITE, ICE, DTLS, SRTP; 1 s of media; BYE) through webrtc-phone to a SIPp
# echo. Reports whether the gateway kept up: calls ok/failed, INVITE->200 and INVITE->first
# echoed packet (DTLS included) for the first and the last fifth of the calls (a gateway that
# falls behind shows a growing setup time), and the gateway's CPU during the run.
# Target (issue 6): at least 300 setups per second including DTLS.
#
# Usage: bench/setup-rate.sh [-r RATE] [-s SECONDS] [-o OUT_DIR]    (default 300/s for 5 s)
# Needs target/release/{loadgen,webrtc-phone} and sipp. Loopback only; processes stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=300 SECS=5 OUT=$ROOT/bench/setup-rate-out
while getopts "r:s:o:" o; do
	case $o in r) RATE=$OPTARG ;; s) SECS=$OPTARG ;; o) OUT=$OPTARG ;; *) sed -n 2,10p "$0"; exit 2 ;; esac
done
mkdir -p "$OUT"
N=$((RATE * SECS))
. "$ROOT/bench/lib.sh"
trap stop_all EXIT

sipp -sf "$ROOT/bench/sipp/uas-echo.xml" -i 127.0.0.1 -p 27492 -mi 127.0.0.1 -mp 27700 \
	-rtp_echo -aa -nostdin >"$OUT/sipp.out" 2>&1 &
PIDS+=($!)
sleep 0.5
env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=27743 WSS_PORT=27744 SIP_PORT=27460 \
	MIN_RTP_PORT=23000 MAX_RTP_PORT=26499 STATE_DIR="$OUT/state" OUTBOUND_PROXY=127.0.0.1:27492 \
	RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 WS_MSG_RATE=100000 ${GW_ENV:-} \
	"$ROOT/target/release/webrtc-phone" >"$OUT/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
wait_listening "$OUT/gateway.log" || exit 1

"$ROOT/target/release/loadgen" --wss 127.0.0.1:27744 --calls "$N" -n "$N" --rate "$RATE" --hold 1 \
	--setup-timeout 15 --max-run $((SECS + 60)) --quiet --watch "webrtc-phone=$GW" \
	--json "$OUT/loadgen.json" >"$OUT/loadgen.txt" 2>&1 || true
python3 - "$OUT/loadgen.json" "$RATE" "$SECS" <<'PY'
import json, sys
rep = json.load(open(sys.argv[1]))
rate, secs = float(sys.argv[2]), float(sys.argv[3])
calls = sorted([c for c in rep["calls"] if c["direction"] == "out"], key=lambda c: c["idx"])
s = rep["summary"]
def pct(v, q):
    v = sorted(x for x in v if x is not None)
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")
fifth = max(1, len(calls) // 5)
print(f"setup rate: offered {rate:.0f} calls/s for {secs:.0f} s = {len(calls)} calls; ok {s['ok']}, failed {s['failed']} {s['failures']}")
for name, part in (("first fifth", calls[:fifth]), ("last fifth", calls[-fifth:])):
    i2 = [c["invite_to_200_ms"] for c in part]
    im = [c["invite_to_media_ms"] for c in part]
    print(f"  {name:11}: INVITE->200 p50 {pct(i2, .5):.1f} ms p99 {pct(i2, .99):.1f} ms; "
          f"INVITE->media (ICE+DTLS+echo) p50 {pct(im, .5):.1f} ms p99 {pct(im, .99):.1f} ms")
# The last call's media began at about (n-1)/rate + its INVITE->media: setups per second achieved.
last = [c["invite_to_media_ms"] for c in calls[-fifth:] if c["invite_to_media_ms"] is not None]
if last and s["ok"]:
    span = (len(calls) - 1) / rate + max(last) / 1000.0
    print(f"  achieved: {s['ok']} calls with media in {span:.2f} s = {s['ok'] / span:.0f} setups/s")
for p in s["processes"]:
    peak = max((x[1] for t in rep["timeline"] for x in t["cpu"] if x[0] == p["name"]), default=0)
    print(f"  {p['name']}: peak CPU {peak:.0f} % of a core (1-s samples), idle {p['idle_cpu_pct']:.1f} %")
PY
