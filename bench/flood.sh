#!/usr/bin/env bash
# SIP/UDP flood from one address while real calls set up (issue 11, point 5). One source,
# 127.0.0.66, floods the gateway's SIP/UDP port (bench `flood`: OPTIONS, INVITEs and REGISTERs
# in turn, each with a fresh Call-ID, branch and tag) at RATE requests/s (or `max`: as fast as
# one thread sends) for SECONDS; meanwhile the load generator sets up CALLS real calls (WSS,
# INVITE, ICE, DTLS, 2 s of SRTP, BYE) through the gateway to a SIPp echo, spread over the
# flood. Reports: the flood's achieved rate and what came back to it; the calls' setup times
# (INVITE->200 and INVITE->first echoed packet, p50/p99) and failures; /healthz latency
# (a fresh HTTPS request every 100 ms: 2 s before the flood, then during it); the gateway's
# CPU (% of one core, over the flood and its busiest second) and RSS (start, max).
# Target (issue 11): at 4,000/s, calls set up in under 1 s and /healthz answers in under 500 ms.
#
# Usage: bench/flood.sh [-r RATE|max] [-d SECONDS] [-c CALLS] [-o OUT_DIR]
#        (default 1000/s for 10 s, 30 calls). GW_ENV="SIP_UDP_RATE=..." adds gateway settings;
#        WEBRTC_PHONE_BIN runs another gateway build (an older one, to compare).
# Needs {flood,loadgen,webrtc-phone} in $CARGO_TARGET_DIR/release or target/release (cargo build
# --release -p bench -p signaling) and sipp. Loopback only; processes stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=1000 SECS=10 CALLS=30 OUT=$ROOT/bench/flood-out
while getopts "r:d:c:o:" o; do
	case $o in r) RATE=$OPTARG ;; d) SECS=$OPTARG ;; c) CALLS=$OPTARG ;; o) OUT=$OPTARG ;; *) sed -n 2,16p "$0"; exit 2 ;; esac
done
[ "$SECS" -ge 6 ] 2>/dev/null || { echo "-d: at least 6 seconds"; exit 2; }
[ "$CALLS" -ge 1 ] 2>/dev/null || { echo "-c: at least 1 call"; exit 2; }
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
GW_BIN=${WEBRTC_PHONE_BIN:-$BIN/webrtc-phone}
. "$ROOT/bench/lib.sh"
trap stop_all EXIT

sipp -sf "$ROOT/bench/sipp/uas-echo.xml" -i 127.0.0.1 -p 28492 -mi 127.0.0.1 -mp 28700 \
	-rtp_echo -aa -nostdin >"$OUT/sipp.out" 2>&1 &
PIDS+=($!)
sleep 0.5
# The load generator's calls all come from 127.0.0.1: lift the per-address limits meant for
# browsers (as setup-rate.sh does); the flood's own limits stay at their defaults.
env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=28743 WSS_PORT=28744 SIP_PORT=28460 \
	MIN_RTP_PORT=18000 MAX_RTP_PORT=19999 STATE_DIR="$OUT/state" OUTBOUND_PROXY=127.0.0.1:28492 \
	RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 WS_MSG_RATE=100000 ${GW_ENV:-} \
	"$GW_BIN" >"$OUT/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
wait_listening "$OUT/gateway.log" || exit 1

# Baseline: /healthz and the gateway's CPU for 2 s without a flood.
"$BIN/flood" --target 127.0.0.1:28460 --rate 0 --duration 2 --healthz 127.0.0.1:28743 \
	--watch "$GW" --json "$OUT/baseline.json" >"$OUT/baseline.txt"

# loadgen samples its idle floor for 3 s, then ramps; the flood starts 2 s after it, so the
# calls start 1 s into the flood and their ramp ends 3 s before it does.
CALL_RATE=$(python3 -c "print(max(0.1, $CALLS / ($SECS - 4)))")
"$BIN/loadgen" --wss 127.0.0.1:28744 --calls "$CALLS" -n "$CALLS" --rate "$CALL_RATE" --hold 2 \
	--setup-timeout 15 --max-run $((SECS + 60)) --quiet --watch "webrtc-phone=$GW" \
	--json "$OUT/loadgen.json" >"$OUT/loadgen.txt" 2>&1 &
LG=$!
PIDS+=("$LG")
sleep 2
"$BIN/flood" --target 127.0.0.1:28460 --rate "$RATE" --duration "$SECS" --healthz 127.0.0.1:28743 \
	--watch "$GW" --json "$OUT/flood.json" | tee "$OUT/flood.txt"
wait "$LG" || true
kill -0 "$GW" 2>/dev/null || { echo "the gateway died:"; tail -20 "$OUT/gateway.log"; exit 1; }
# What the gateway counted (builds with per-reason SIP drop counters), and what the kernel
# dropped before the gateway read it (the last column of /proc/net/udp, its SIP port).
curl -sk --max-time 5 https://127.0.0.1:28743/metrics >"$OUT/metrics.txt" || true
python3 -c "
print(sum(int(l.split()[-1]) for l in open('/proc/net/udp').readlines()[1:]
          if int(l.split()[1].split(':')[1], 16) == 28460))" >"$OUT/sip-udp-drops.txt"

python3 - "$OUT" "$RATE" "$SECS" "$CALLS" <<'PY'
import json, sys
out, rate, secs, calls = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
base = json.load(open(f"{out}/baseline.json"))
fl = json.load(open(f"{out}/flood.json"))
lg = json.load(open(f"{out}/loadgen.json"))
s = lg["summary"]
f = lambda v: "-" if v is None else f"{v:.1f}"
hb, hz, p = base["healthz"], fl["healthz"], fl["process"]
print(f"\n== flood {rate}/s for {secs:.0f} s from 127.0.0.66, {calls} calls")
print(f"flood: sent {fl['sent']} ({fl['sent_bytes']} B) = {fl['achieved_per_s']:.0f}/s achieved, "
      f"{fl['send_errors']} send errors; answers {fl['answers']} ({fl['answer_bytes']} B, "
      f"{fl['answer_bytes'] / max(1, fl['sent_bytes']):.2f}x the bytes sent) by status {fl['by_status']}")
print(f"calls: ok {s['ok']} of {s['calls']}, failed {s['failed']} {s['failures']}")
print(f"  INVITE->200 p50 {f(s['invite_to_200_ms']['p50'])} ms p99 {f(s['invite_to_200_ms']['p99'])} ms; "
      f"INVITE->media (ICE+DTLS+echo) p50 {f(s['invite_to_media_ms']['p50'])} ms p99 {f(s['invite_to_media_ms']['p99'])} ms")
print(f"/healthz: before the flood p50 {f(hb['p50_ms'])} ms max {f(hb['max_ms'])} ms; during it "
      f"{hz['samples']} samples, {hz['failures']} failed, p50 {f(hz['p50_ms'])} p99 {f(hz['p99_ms'])} max {f(hz['max_ms'])} ms")
counted = [l.rsplit(" ", 1) for l in open(f"{out}/metrics.txt") if l.startswith("webrtc_phone_sip_dropped")]
counted = ", ".join(f"{k[k.find('{') + 1:k.find('}')]} {float(v):.0f}" for k, v in counted) or "no such counter"
print(f"gateway's SIP drops: {counted}; kernel drops on its SIP socket: {open(f'{out}/sip-udp-drops.txt').read().strip()}")
print(f"gateway: CPU {p['cpu_pct']:.0f} % of a core over the flood (busiest second {p['cpu_pct_max_1s']:.0f} %; "
      f"{base['process']['cpu_pct']:.0f} % before), RSS {p['rss_start_kib'] / 1024:.1f} MiB at start, max {p['rss_max_kib'] / 1024:.1f} MiB")
print("\nREADME row: | offered/s | achieved/s | calls ok | INVITE->200 p50/p99 ms | INVITE->media p50/p99 ms "
      "| /healthz p50/p99/max ms | gateway CPU % (busiest s) | RSS max MiB |")
print(f"| {rate} | {fl['achieved_per_s']:,.0f} | {s['ok']}/{s['calls']} | {f(s['invite_to_200_ms']['p50'])} / "
      f"{f(s['invite_to_200_ms']['p99'])} | {f(s['invite_to_media_ms']['p50'])} / {f(s['invite_to_media_ms']['p99'])} | "
      f"{f(hz['p50_ms'])} / {f(hz['p99_ms'])} / {f(hz['max_ms'])} | {p['cpu_pct']:.0f} ({p['cpu_pct_max_1s']:.0f}) | "
      f"{p['rss_max_kib'] / 1024:.1f} |")
PY
