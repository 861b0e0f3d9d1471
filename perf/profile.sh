#!/usr/bin/env bash
# Profiles webrtc-phone under a load-generator run: perf record -e cpu-clock -g (hardware
# counters are not available on these VMs) on the gateway's PID while loadgen holds N calls
# through it to a SIPp echo, then writes a flame graph (inferno) and a top-symbols summary.
#
# Usage: perf/profile.sh [-n CALLS] [-r RATE] [-d HOLD_S] [-o OUT_DIR] [-B BYTES]
#        -B raises net.core.rmem_default for the run, as compare.sh does (needs root): SIPp has
#        no option for its echo socket, which overflows at 500 calls with the default.
# Needs: target/release/{loadgen,webrtc-phone} (cargo build --release -p bench -p signaling),
#        sipp, perf (Debian linux-perf), inferno (cargo install inferno). Loopback only; every
#        process is stopped by its PID.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=200 RATE=50 HOLD=20 OUT=$ROOT/perf/out RMEM=
while getopts "n:r:d:o:B:" o; do
	case $o in
	n) N=$OPTARG ;; r) RATE=$OPTARG ;; d) HOLD=$OPTARG ;; o) OUT=$OPTARG ;; B) RMEM=$OPTARG ;;
	*) sed -n 2,11p "$0"; exit 2 ;;
	esac
done
mkdir -p "$OUT"
export PATH=$HOME/.cargo/bin:$PATH
. "$ROOT/bench/lib.sh"
trap stop_all EXIT
[ -z "$RMEM" ] || raise_rmem "$RMEM"

sipp -sf "$ROOT/bench/sipp/uas-echo.xml" -i 127.0.0.1 -p 25292 -mi 127.0.0.1 -mp 26300 \
	-rtp_echo -aa -nostdin >"$OUT/sipp.out" 2>&1 &
PIDS+=($!)
sleep 0.5
env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=25543 WSS_PORT=25544 SIP_PORT=25260 \
	MIN_RTP_PORT=23000 MAX_RTP_PORT=24999 STATE_DIR="$OUT/state" OUTBOUND_PROXY=127.0.0.1:25292 \
	RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 "$ROOT/target/release/webrtc-phone" >"$OUT/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
wait_listening "$OUT/gateway.log" || exit 1

"$ROOT/target/release/loadgen" --wss 127.0.0.1:25544 -n "$N" --rate "$RATE" --hold "$HOLD" \
	--max-run $((N / RATE + HOLD + 60)) --quiet --json "$OUT/loadgen.json" >"$OUT/loadgen.txt" &
LG=$!
PIDS+=("$LG")
# Record while every call is up: after the ramp, for most of the hold.
sleep $((N / RATE + 2))
perf record -e cpu-clock -g -F 999 -p "$GW" -o "$OUT/perf.data" -- sleep $((HOLD - 4)) 2>"$OUT/perf-record.log"
wait "$LG" || true
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf >"$OUT/stacks.folded"
inferno-flamegraph --title "webrtc-phone, $N calls" <"$OUT/stacks.folded" >"$OUT/flame.svg"
perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
	awk '/^ +[0-9]+\.[0-9]+%/ && n++ < 40' >"$OUT/top.txt"
echo "flame graph: $OUT/flame.svg"
echo "top symbols: $OUT/top.txt"
sed -n 1,20p "$OUT/top.txt"
cat "$OUT/loadgen.txt"
