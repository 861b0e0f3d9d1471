#!/usr/bin/env bash
# Soak: holds N calls through webrtc-phone for D seconds (loadgen -> gateway -> SIPp echo) and
# samples the gateway's RSS and open file descriptors every 10 s. Reports loss (from loadgen),
# RSS growth after warm-up (the first fifth of the hold) and fd growth. Target: 500 calls for
# 30 minutes, 0 packets lost, RSS growth under 5 %, no fd growth.
#
# Usage: bench/soak.sh [-n CALLS] [-d HOLD_S] [-o OUT_DIR] [-B BYTES]   (default 500 calls, 1800 s)
# Needs target/release/{loadgen,webrtc-phone} and sipp. Loopback only; processes stopped by PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=500 HOLD=1800 OUT=$ROOT/bench/soak-out RMEM=
while getopts "n:d:o:B:" o; do
	case $o in n) N=$OPTARG ;; d) HOLD=$OPTARG ;; o) OUT=$OPTARG ;; B) RMEM=$OPTARG ;; *) sed -n 2,9p "$0"; exit 2 ;; esac
done
mkdir -p "$OUT"
. "$ROOT/bench/lib.sh"
trap stop_all EXIT
[ -z "$RMEM" ] || raise_rmem "$RMEM"

sipp -sf "$ROOT/bench/sipp/uas-echo.xml" -i 127.0.0.1 -p 25392 -mi 127.0.0.1 -mp 26500 \
	-rtp_echo -aa -nostdin >"$OUT/sipp.out" 2>&1 &
PIDS+=($!)
sleep 0.5
env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=25643 WSS_PORT=25644 SIP_PORT=25360 \
	MIN_RTP_PORT=21000 MAX_RTP_PORT=22999 STATE_DIR="$OUT/state" OUTBOUND_PROXY=127.0.0.1:25392 \
	RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 ${GW_ENV:-} "$ROOT/target/release/webrtc-phone" >"$OUT/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
wait_listening "$OUT/gateway.log" || exit 1

RATE=25
"$ROOT/target/release/loadgen" --wss 127.0.0.1:25644 -n "$N" --rate "$RATE" --hold "$HOLD" \
	--max-run $((N / RATE + HOLD + 120)) --quiet --watch "webrtc-phone=$GW" \
	--json "$OUT/loadgen.json" --html "$OUT/loadgen.html" >"$OUT/loadgen.txt" &
LG=$!
PIDS+=("$LG")
echo "t_s,rss_kib,fds" >"$OUT/samples.csv"
t0=$(date +%s)
while kill -0 "$LG" 2>/dev/null; do
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$GW/status" 2>/dev/null || echo 0)
	fds=$(ls "/proc/$GW/fd" 2>/dev/null | wc -l)
	echo "$(($(date +%s) - t0)),$rss,$fds" >>"$OUT/samples.csv"
	sleep 10
done
wait "$LG" || true
python3 - "$OUT/samples.csv" "$N" "$RATE" "$HOLD" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1]))]
n, rate, hold = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ramp = n / rate
held = [r for r in rows if ramp + 5 <= int(r["t_s"]) <= ramp + hold - 5]
if len(held) < 3:
    print("soak: too few samples while all calls were up"); sys.exit(1)
warm = held[: max(1, len(held) // 5)]
base_rss = max(int(r["rss_kib"]) for r in warm)
end_rss = max(int(r["rss_kib"]) for r in held[-3:])
base_fd = max(int(r["fds"]) for r in warm)
end_fd = max(int(r["fds"]) for r in held[-3:])
print(f"soak: {n} calls held {hold:.0f} s; RSS after warm-up {base_rss} KiB, at the end {end_rss} KiB "
      f"({100 * (end_rss - base_rss) / base_rss:+.1f} %); fds {base_fd} -> {end_fd} ({end_fd - base_fd:+d})")
PY
cat "$OUT/loadgen.txt"
