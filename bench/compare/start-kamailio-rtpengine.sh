#!/usr/bin/env bash
# The comparison stack on loopback (copied from shared/reference/rtpengine/start-comparison.sh,
# configs in this directory): every daemon in the foreground as a background job, PIDs in
# $RUN_DIR/<name>.pid. Stop with stop-kamailio-rtpengine.sh (by those PIDs only).
#
#   rtpengine            ng 127.0.0.1:12222, HTTP :12224, media 40000-49999
#                        (ENGINE=ours: webrtc-phone --mode media on the same ports)
#                        RTPENGINE_ARGS / NODE_ARGS: more options for either engine
#   kamailio registrar   udp 127.0.0.1:15070
#   kamailio edge        udp :15060, ws :15080, wss :15443
#   sipp UAS             udp :15090, RTP echo on :16000
#
# Needs: rtpengine-daemon kamailio kamailio-websocket-modules kamailio-tls-modules sip-tester openssl
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN_DIR=${RUN_DIR:-$PWD/run-comparison}
mkdir -p "$RUN_DIR"
RUN_DIR=$(cd "$RUN_DIR" && pwd)

for f in rtpengine registrar edge sipp-uas; do
	if [ -s "$RUN_DIR/$f.pid" ] && kill -0 "$(cat "$RUN_DIR/$f.pid")" 2>/dev/null; then
		echo "$f already running (pid $(cat "$RUN_DIR/$f.pid")); run stop-kamailio-rtpengine.sh first" >&2
		exit 1
	fi
done

if [ ! -s "$RUN_DIR/edge-cert.pem" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$RUN_DIR/edge-key.pem" -out "$RUN_DIR/edge-cert.pem" -days 30 \
		-subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
	chmod 600 "$RUN_DIR/edge-key.pem"
fi

# ENGINE=ours: the same Kamailio config drives our engine (webrtc-phone --mode media) over ng
# on the same socket, ports and media range rtpengine would use; the PID file keeps the name
# `rtpengine.pid` so the stop script and the benchmarks treat both engines alike.
# NODES=2 (with ENGINE=ours): two nodes in one rtpengine set, ng 12222 and 12232, /metrics on
# 12224 and 12234, media 40000-44999 and 45000-49999; Kamailio gives up on a silent node
# after 2 tries of 500 ms.
EDGE_DEFINES=()
if [ "${ENGINE:-rtpengine}" = ours ]; then
	ROOT=$(cd "$HERE/../.." && pwd)
	GW_BIN=${WEBRTC_PHONE_BIN:-$ROOT/target/release/webrtc-phone}
	node() { # name ng-port metrics-port min max
		env -i PATH="$PATH" RTPP_NODEBUG=1 "$GW_BIN" --mode media --ng-listen "127.0.0.1:$2" \
			--metrics-address "127.0.0.1:$3" --bind 127.0.0.1 --min-rtp-port "$4" --max-rtp-port "$5" \
			${NODE_ARGS:-} >"$RUN_DIR/$1.log" 2>&1 &
		echo $! >"$RUN_DIR/$1.pid"
	}
	if [ "${NODES:-1}" = 2 ]; then
		node rtpengine 12222 12224 40000 44999
		node node2 12232 12234 45000 49999
		EDGE_DEFINES=(-A 'RTPENGINE_SOCK="udp:127.0.0.1:12222=1 udp:127.0.0.1:12232=1"'
			-A RTPENGINE_TOUT_MS=500 -A RTPENGINE_RETR=2)
	else
		node rtpengine 12222 12224 40000 49999
	fi
else
	rtpengine --config-file="$HERE/rtpengine.conf" --pidfile="$RUN_DIR/rtpengine.pid.daemon" \
		${RTPENGINE_ARGS:-} --foreground --log-stderr >"$RUN_DIR/rtpengine.log" 2>&1 &
	echo $! >"$RUN_DIR/rtpengine.pid"
fi

mkdir -p "$RUN_DIR/registrar-run" "$RUN_DIR/edge-run"
kamailio -f "$HERE/registrar.cfg" -DD -E -Y "$RUN_DIR/registrar-run" -w "$RUN_DIR" \
	-A REG_PORT=15070 -A 'ECHO_URI="sip:127.0.0.1:15090"' >"$RUN_DIR/registrar.log" 2>&1 &
echo $! >"$RUN_DIR/registrar.pid"

# -m 512: shared memory in MB. With the default 64 MB the edge refuses TLS connections past
# ~400 ("ssl bug #1491 workaround: not enough memory for safe operation").
kamailio -f "$HERE/edge.cfg" -DD -E -Y "$RUN_DIR/edge-run" -w "$RUN_DIR" -m 512 \
	-A "TLS_CERT=\"$RUN_DIR/edge-cert.pem\"" -A "TLS_KEY=\"$RUN_DIR/edge-key.pem\"" \
	${EDGE_DEFINES[@]+"${EDGE_DEFINES[@]}"} >"$RUN_DIR/edge.log" 2>&1 &
echo $! >"$RUN_DIR/edge.pid"

sipp -sf "$HERE/../sipp/uas-echo.xml" -i 127.0.0.1 -p 15090 -mi 127.0.0.1 -mp 16000 -rtp_echo -aa \
	-nostdin -trace_err -error_file "$RUN_DIR/sipp-uas-errors.log" >"$RUN_DIR/sipp-uas.out" 2>&1 &
echo $! >"$RUN_DIR/sipp-uas.pid"

sleep 2
ok=1
for f in rtpengine node2 registrar edge sipp-uas; do
	[ -s "$RUN_DIR/$f.pid" ] || continue
	if kill -0 "$(cat "$RUN_DIR/$f.pid")" 2>/dev/null; then
		echo "$f running, pid $(cat "$RUN_DIR/$f.pid")"
	else
		echo "$f NOT running; see $RUN_DIR/$f.log" >&2
		ok=0
	fi
done
[ $ok = 1 ]
