#!/usr/bin/env bash
# Incoming calls: loadgen's callee UAs register through the gateway at a Kamailio registrar
# (digest), SIPp as UAC calls each registered user through the registrar and echoes its RTP.
# Prints loadgen's summary (setup = INVITE received → first echoed packet, RTT, loss).
#
# Usage: bench/compare/incoming.sh [-c CALLS_PER_USER] [-d HOLD_S] [-o OUT_DIR]
# Users: alice, bob, carol (the registrar's subscribers). Loopback only; stops by PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CALLS=3
HOLD=5
OUT=$PWD/incoming-out
while getopts "c:d:o:" o; do
	case $o in
	c) CALLS=$OPTARG ;;
	d) HOLD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	*) sed -n 2,8p "$0"; exit 2 ;;
	esac
done
# What the comparison needs, installed when missing (as the README's test command does).
source "$ROOT/scripts/deps.sh" bench
export PATH=$HOME/.cargo/bin:$PATH
LOADGEN=${LOADGEN:-$ROOT/target/release/loadgen}
GW_BIN=${WEBRTC_PHONE_BIN:-$ROOT/target/release/webrtc-phone}
if [ ! -x "$LOADGEN" ] || [ ! -x "$GW_BIN" ]; then
	(cd "$ROOT" && cargo build --release --locked -p bench -p signaling)
fi
rm -rf "$OUT"; mkdir -p "$OUT/kam-run"
OUT=$(cd "$OUT" && pwd)
ANSWER_FOR=$(( CALLS * (HOLD + 3) + 10 ))

. "$ROOT/bench/lib.sh"
trap stop_all EXIT

kamailio -f "$HERE/registrar.cfg" -DD -E -Y "$OUT/kam-run" -w "$OUT" -A REG_PORT=25070 \
	-A 'ECHO_URI="sip:127.0.0.1:25192"' >"$OUT/registrar.log" 2>&1 &
PIDS+=($!)
env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=25443 WSS_PORT=25444 SIP_PORT=25160 \
	MIN_RTP_PORT=21000 MAX_RTP_PORT=22999 STATE_DIR="$OUT/state" OUTBOUND_PROXY=127.0.0.1:25070 \
	RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 "$GW_BIN" >"$OUT/gateway.log" 2>&1 &
GW=$!; PIDS+=("$GW")
for _ in $(seq 200); do grep -q "webrtc-phone listening" "$OUT/gateway.log" && break; sleep 0.1; done
sleep 1

"$LOADGEN" --wss 127.0.0.1:25444 --calls 0 -n 1 --quiet \
	--answer alice:alicePassword --answer bob:bobPassword --answer carol:carolPassword \
	--answer-for "$ANSWER_FOR" --max-run $((ANSWER_FOR + 30)) --watch "webrtc-phone=$GW" \
	--json "$OUT/incoming.json" --html "$OUT/incoming.html" >"$OUT/loadgen.txt" 2>&1 &
LG=$!; PIDS+=("$LG")
# Call once the three callees are registered (each says so on stderr), at most 30 s.
for _ in $(seq 300); do [ "$(grep -c "^callee .* registered" "$OUT/loadgen.txt")" -ge 3 ] && break; sleep 0.1; done

i=0
SIPPS=()
for user in alice bob carol; do
	sipp -sf "$ROOT/bench/sipp/uac.xml" 127.0.0.1:25070 -s "$user" -m "$CALLS" -l 1 -d $((HOLD * 1000)) \
		-i 127.0.0.1 -p $((25094 + i)) -mi 127.0.0.1 -mp $((26300 + 4 * i)) -rtp_echo \
		-nostdin -timeout $((ANSWER_FOR + 10)) -timeout_error \
		-trace_err -error_file "$OUT/uac-$user.err" >"$OUT/uac-$user.out" 2>&1 &
	SIPPS+=($!); PIDS+=($!)
	i=$((i + 1))
done
rc=0
for p in "${SIPPS[@]}"; do wait "$p" || rc=$?; done
echo "SIPp UACs finished (last non-zero exit status: $rc)"
wait "$LG" || true
cat "$OUT/loadgen.txt"
