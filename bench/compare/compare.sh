#!/usr/bin/env bash
# Runs the same load (loadgen: N browsers over WSS with ICE/DTLS-SRTP PCMU, SIPp echo far end)
# against webrtc-phone and against Kamailio (WSS edge) + rtpengine, then prints one table:
# CPU per call and RSS per call (from /proc, each stack's own process trees), loss, RTT p99,
# setup time, failed calls, and the floor (each stack's idle CPU; the harness's own CPU).
#
# Usage: bench/compare/compare.sh [-n CONCURRENCY] [-r RATE] [-d HOLD_S] [-o OUT_DIR] [-s gw|kr|both] [-B BYTES]
#        GW_ENV="MEDIA_THREADS=2" adds settings to the gateway's environment (MEDIA_THREADS,
#        MEDIA_BATCH_US and MEDIA_PRIORITY there apply to the floor run too).
#        The floor under load (target/release/floor: the same number of calls, plain RTP
#        relayed by the engine's reactors, no crypto or signalling; FLOOR_ARGS adds options, e.g.
#        "--batch-us 0" for a build without batching) runs just before and just after the
#        gateway; the table gives the gateway's CPU per received packet as a multiple of their
#        mean, and the residence time and completions per wake-up from the gateway's /metrics,
#        read when the load generator is done.
# Needs: target/release/{loadgen,floor,webrtc-phone} (built when missing), sipp; for the
#        comparison stack rtpengine-daemon, kamailio, kamailio-websocket-modules,
#        kamailio-tls-modules (installed when missing, by scripts/deps.sh bench). Loopback only;
#        every process is stopped by its PID.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N=50
RATE=25
HOLD=20
OUT=$PWD/compare-out
STACKS=both
RMEM=
while getopts "n:r:d:o:s:B:" o; do
	case $o in
	n) N=$OPTARG ;;
	r) RATE=$OPTARG ;;
	d) HOLD=$OPTARG ;;
	o) OUT=$OPTARG ;;
	s) STACKS=$OPTARG ;;
	B) RMEM=$OPTARG ;;
	*) sed -n 2,10p "$0"; exit 2 ;;
	esac
done
# What the comparison needs, installed when missing (as the README's test command does).
source "$ROOT/scripts/deps.sh" bench
export PATH=$HOME/.cargo/bin:$PATH
LOADGEN=${LOADGEN:-$ROOT/target/release/loadgen}
GW_BIN=${WEBRTC_PHONE_BIN:-$ROOT/target/release/webrtc-phone}
FLOOR_BIN=${FLOOR_BIN:-$(dirname "$LOADGEN")/floor}
if [ ! -x "$LOADGEN" ] || [ ! -x "$GW_BIN" ] || [ ! -x "$FLOOR_BIN" ]; then
	(cd "$ROOT" && cargo build --release --locked -p bench -p signaling)
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# Bound: ramp + hold + setup/teardown margin.
MAX_RUN=$(python3 -c "print(int($N/$RATE + $HOLD + 60))")

. "$ROOT/bench/lib.sh"
cleanup() {
	stop_all
	for k in kr kn; do
		if [ -s "$OUT/$k/edge.pid" ]; then RUN_DIR="$OUT/$k" "$HERE/stop-kamailio-rtpengine.sh" >/dev/null || true; fi
	done
}
trap cleanup EXIT
[ -z "$RMEM" ] || raise_rmem "$RMEM"

# Kernel receive-buffer drops (the last column of /proc/net/udp) on local ports lo..hi.
udp_drops() {
	python3 -c "
import sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
print(sum(int(l.split()[-1]) for l in open('/proc/net/udp').readlines()[1:]
          if lo <= int(l.split()[1].split(':')[1], 16) <= hi))" "$1" "$2"
}

run_gw() {
	echo "== webrtc-phone: $N calls, $RATE/s, hold $HOLD s"
	local d="$OUT/gw"
	rm -rf "$d"; mkdir -p "$d"
	sipp -sf "$ROOT/bench/sipp/uas-echo.xml" -i 127.0.0.1 -p 25192 -mi 127.0.0.1 -mp 26100 \
		-rtp_echo -aa -nostdin -trace_err -error_file "$d/sipp.err" >"$d/sipp.out" 2>&1 &
	local sipp=$!; PIDS+=("$sipp")
	# OUTBOUND_PROXY too: before 055e066, OUTBOUND_ROUTE alone left the demo PBX answering
	# calls to "echo" itself (no SIP side, no plain RTP leg).
	sleep 0.5
	kill -0 "$sipp" 2>/dev/null || { echo "sipp did not start (port 25192 busy?)"; cat "$d/sipp.out"; return 1; }
	env -i PATH="$PATH" BIND_ADDRESS=127.0.0.1 HTTPS_PORT=25443 WSS_PORT=25444 SIP_PORT=25160 \
		MIN_RTP_PORT=21000 MAX_RTP_PORT=23999 STATE_DIR="$d/state" OUTBOUND_PROXY=127.0.0.1:25192 OUTBOUND_ROUTE=127.0.0.1:25192 \
		RTPP_NODEBUG=1 MAX_WS_PER_IP=100000 MAX_CALLS_PER_IP=100000 MAX_CONNS_PER_IP=100000 ${GW_ENV:-} "$GW_BIN" >"$d/gateway.log" 2>&1 &
	local gw=$!; PIDS+=("$gw")
	for _ in $(seq 200); do grep -q "webrtc-phone listening" "$d/gateway.log" && break; sleep 0.1; done
	grep -q "webrtc-phone listening" "$d/gateway.log" || { echo "gateway did not start"; cat "$d/gateway.log"; return 1; }
	"$LOADGEN" --wss 127.0.0.1:25444 -n "$N" --rate "$RATE" --hold "$HOLD" --max-run "$MAX_RUN" \
		--watch "webrtc-phone=$gw" --watch "sipp-echo=$sipp" \
		--json "$OUT/webrtc-phone.json" --html "$OUT/webrtc-phone.html" | tee "$d/loadgen.txt"
	curl -sk --max-time 5 "https://127.0.0.1:25443/metrics" >"$d/metrics.txt" || true
	# How long the media reactors waited for a CPU once runnable (schedstat: run time ns,
	# run-queue wait ns, timeslices): residence includes it.
	for t in /proc/"$gw"/task/*; do
		case $(cat "$t/comm" 2>/dev/null) in media-*)
			awk -v n="$(cat "$t/comm")" '{printf "%s: on CPU %.0f ms, waited for a CPU %.0f ms over %d timeslices (%.0f us each)\n", n, $1/1e6, $2/1e6, $3, $2/1e3/($3>0?$3:1)}' "$t/schedstat" ;;
		esac
	done | tee "$d/schedstat.txt"
	grep -m1 "media batching" "$d/gateway.log" || true
	echo "UDP receive-buffer drops: gateway RTP ports $(udp_drops 21000 23999), SIPp echo $(udp_drops 26100 26103)" | tee "$d/udp-drops.txt"
	stop_pid "$gw"; stop_pid "$sipp"; PIDS=()
}

run_kr() {
	echo "== Kamailio edge + rtpengine: $N calls, $RATE/s, hold $HOLD s"
	local d="$OUT/kr"
	rm -rf "$d"; mkdir -p "$d"
	RUN_DIR="$d" RTPENGINE_ARGS="${PRIO:+--scheduling=fifo --priority=$PRIO}" "$HERE/start-kamailio-rtpengine.sh"
	sleep 1
	"$LOADGEN" --wss 127.0.0.1:15443 --ws-path / -n "$N" --rate "$RATE" --hold "$HOLD" --max-run "$MAX_RUN" \
		--watch "kamailio-edge=$(cat "$d/edge.pid")" --watch "rtpengine=$(cat "$d/rtpengine.pid")" \
		--watch "sipp-echo=$(cat "$d/sipp-uas.pid")" \
		--json "$OUT/kamailio-rtpengine.json" --html "$OUT/kamailio-rtpengine.html" | tee "$d/loadgen.txt"
	echo "UDP receive-buffer drops: rtpengine ports $(udp_drops 40000 49999), SIPp echo $(udp_drops 16000 16003)" | tee "$d/udp-drops.txt"
	RUN_DIR="$d" "$HERE/stop-kamailio-rtpengine.sh"
}

run_kn() {
	echo "== Kamailio edge + our engine over ng: $N calls, $RATE/s, hold $HOLD s"
	local d="$OUT/kn"
	rm -rf "$d"; mkdir -p "$d"
	ENGINE=ours WEBRTC_PHONE_BIN="$GW_BIN" RUN_DIR="$d" NODE_ARGS="${PRIO:+--media-priority $PRIO}" \
		"$HERE/start-kamailio-rtpengine.sh"
	sleep 1
	"$LOADGEN" --wss 127.0.0.1:15443 --ws-path / -n "$N" --rate "$RATE" --hold "$HOLD" --max-run "$MAX_RUN" \
		--watch "kamailio-edge=$(cat "$d/edge.pid")" --watch "our-engine=$(cat "$d/rtpengine.pid")" \
		--watch "sipp-echo=$(cat "$d/sipp-uas.pid")" \
		--json "$OUT/kamailio-ours.json" --html "$OUT/kamailio-ours.html" | tee "$d/loadgen.txt"
	curl -s --max-time 5 "http://127.0.0.1:12224/metrics" >"$d/metrics.txt" || true
	echo "UDP receive-buffer drops: our engine ports $(udp_drops 40000 49999), SIPp echo $(udp_drops 16000 16003)" | tee "$d/udp-drops.txt"
	RUN_DIR="$d" "$HERE/stop-kamailio-rtpengine.sh"
}

run_floor() {
	local threads batch="" prio=""
	threads=$(echo "${GW_ENV:-}" | sed -n 's/.*MEDIA_THREADS=\([0-9]*\).*/\1/p')
	batch=$(echo "${GW_ENV:-}" | sed -n 's/.*MEDIA_BATCH_US=\([0-9]*\).*/\1/p')
	prio=$(echo "${GW_ENV:-}" | sed -n 's/.*MEDIA_PRIORITY=\([0-9]*\).*/\1/p')
	echo "== floor under load ($1 the gateway): $N calls, plain RTP, 50 packets/s each way"
	"$FLOOR_BIN" -n "$N" -d 10 --reactors "${threads:-1}" ${batch:+--batch-us $batch} ${prio:+--priority $prio} ${FLOOR_ARGS:-} \
		--json "$OUT/floor-$1.json" | tee "$OUT/floor-$1.txt"
}

# MEDIA_PRIORITY in GW_ENV: every media engine of the run gets the same SCHED_FIFO priority
# (rtpengine through its own --scheduling/--priority), so the comparison stays even.
PRIO=$(echo "${GW_ENV:-}" | sed -n 's/.*MEDIA_PRIORITY=\([0-9]*\).*/\1/p')
# The floor runs just before and just after the gateway, and the ratio takes their mean: the
# VM's speed drifts (up to 40 % within an hour), and a floor from one side of the gateway's run
# only moved "x floor" by as much as the target's margin.
rm -f "$OUT"/floor*.json
floors() { if [ "$STACKS" != kr ] && [ -x "$FLOOR_BIN" ]; then run_floor "$1"; fi; }

case $STACKS in
gw) floors before; run_gw; floors after ;;
kr) run_kr ;;
kn) floors before; run_kn; floors after ;;
*) floors before; run_gw; floors after; run_kr; run_kn ;;
esac

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
stacks = [("webrtc-phone", "webrtc-phone.json", ["webrtc-phone"]),
          ("kamailio+rtpengine", "kamailio-rtpengine.json", ["kamailio-edge", "rtpengine"]),
          ("kamailio+ours-ng", "kamailio-ours.json", ["kamailio-edge", "our-engine"])]
def f(v, fmt="{:.1f}"):
    return "-" if v is None else fmt.format(v)
# The gateway's media reactors, from its /metrics (read after the load generator finished).
import re as _re
def metrics(path):
    m = {"res": {}, "wake": 0, "compl": 0, "pkts": {}}
    if not os.path.exists(path):
        return None
    for line in open(path):
        r = _re.match(r'webrtc_phone_media_residence_seconds_bucket\{([^}]*)\} (\d+)', line)
        if r:
            le = _re.search(r'le="([^"]+)"', r.group(1)).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            m["res"][le] = m["res"].get(le, 0) + int(r.group(2))
            continue
        r = _re.match(r'webrtc_phone_media_(wakeups|completions|packets_received)_total\{reactor="(\d+)"\} (\d+)', line)
        if r:
            k, v = r.group(1), int(r.group(3))
            if k == "wakeups": m["wake"] += v
            elif k == "completions": m["compl"] += v
            else: m["pkts"][r.group(2)] = v
    return m if m["wake"] else None
def quantile(cum, q):
    # cum: {upper bound s: cumulative count}; linear inside a bucket; µs.
    bounds = sorted(cum)
    total = cum[bounds[-1]] if bounds else 0
    if not total:
        return None
    rank, prev_b, prev_c = q * total, 0.0, 0
    for b in bounds:
        c = cum[b]
        if c >= rank:
            if b == float("inf"):
                return prev_b * 1e6
            return (prev_b + (b - prev_b) * (rank - prev_c) / max(c - prev_c, 1)) * 1e6
        prev_b, prev_c = b, c
    return prev_b * 1e6
# The floor before and after the gateway's run; the ratio is to their mean.
floors = [json.load(open(os.path.join(out, "floor-%s.json" % w))) for w in ("before", "after")
          if os.path.exists(os.path.join(out, "floor-%s.json" % w))]
floor = dict(floors[0], us_per_packet=sum(x["us_per_packet"] for x in floors) / len(floors)) if floors else None
gwm = metrics(os.path.join(out, "gw", "metrics.txt"))
rows = []
engine_procs = {}
for name, fn, groups in stacks:
    p = os.path.join(out, fn)
    if not os.path.exists(p):
        continue
    r = json.load(open(p))
    s = r["summary"]
    procs = {x["name"]: x for x in s["processes"]}
    engine_procs[name] = procs
    own = [procs[g] for g in groups if g in procs]
    cpu = sum(x["cpu_ms_per_call_s"] or 0 for x in own) if own else None
    rss = sum(x["rss_per_call_kib"] or 0 for x in own) if own else None
    idle = sum(x["idle_cpu_pct"] for x in own)
    load = sum(x["load_cpu_pct"] for x in own)
    harness = sum(procs[g]["load_cpu_pct"] for g in ("loadgen", "sipp-echo") if g in procs)
    rows.append([name, f"{s['ok']}/{s['calls']}", f(s["peak_active"], "{}"), f(load), f(cpu, "{:.2f}"),
                 f(rss), f(s["loss_pct"], "{:.3f}"), f(s["rtt_ms"]["p99"], "{:.2f}"),
                 f(s["invite_to_200_ms"]["p50"]), f(s["invite_to_200_ms"]["p99"]),
                 f(s["invite_to_media_ms"]["p50"]), str(s["failed"]), f(idle), f(harness)])
    # CPU per received packet: a call brings 100 packets/s into the relay (50 each way).
    us_pkt = cpu * 10 if cpu else None
    ratio = us_pkt / floor["us_per_packet"] if (us_pkt and floor) else None
    res, cpw = "-", "-"
    if name == "webrtc-phone" and gwm:
        qs = [quantile(gwm["res"], q) for q in (0.5, 0.99, 0.999)]
        res = "/".join(f(x, "{:.0f}") for x in qs)
        cpw = f(gwm["compl"] / gwm["wake"])
    rows[-1] += [f(us_pkt, "{:.2f}"), f(ratio, "{:.2f}"), res, cpw]
head = ["stack", "ok/calls", "peak", "CPU % load", "CPU ms/call-s", "RSS KiB/call", "loss %",
        "RTT p99 ms", "INV→200 p50", "INV→200 p99", "INV→media p50", "failed", "floor: idle CPU %",
        "harness CPU % (loadgen+sipp)", "us/rx pkt", "x floor", "res p50/p99/p99.9 us", "compl/wake"]
w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
for row in [head] + rows:
    print("  ".join(str(c).rjust(w[i]) if i else str(c).ljust(w[i]) for i, c in enumerate(row)))
print("CPU ms/call-s = (stack CPU at full load - idle floor) / calls with media; 10 ms/call-s = 1 % of a core per call.")
print("us/rx pkt = CPU ms/call-s x 10 (100 packets/s into the relay per call); x floor = that / the floor under load.")
for when, fl in zip(("before", "after"), floors):
    print("floor under load %s the gateway (%d calls, plain RTP, %s): %.2f us per received packet, %.1f %% of a core, %.1f completions per wake-up, "
          "residence p50/p99/p99.9 %.0f/%.0f/%.0f us, lost %d of %d" % (
          when, fl["calls"], fl["batching"], fl["us_per_packet"], fl["reactor_cpu_pct"], fl["completions_per_wakeup"],
          fl["residence_us"]["p50"], fl["residence_us"]["p99"], fl["residence_us"]["p999"], fl["lost"], fl["sent"]))
if floor:
    print("floor under load used for x floor: %.2f us per received packet (mean of %d run%s)"
          % (floor["us_per_packet"], len(floors), "s" if len(floors) > 1 else ""))
if gwm:
    print("webrtc-phone per-reactor packets received:", ", ".join("reactor %s: %d" % kv for kv in sorted(gwm["pkts"].items())),
          "; residence samples %d" % (gwm["res"].get(float("inf"), 0)))
# The two media engines behind the same Kamailio: each engine process alone.
re_, ours_ = engine_procs.get("kamailio+rtpengine", {}).get("rtpengine"), engine_procs.get("kamailio+ours-ng", {}).get("our-engine")
if re_ and ours_:
    def g(p, k):
        return p.get(k) or 0
    print("media engine alone, same Kamailio config: rtpengine %.2f CPU ms/call-s, %.0f KiB/call; ours over ng %.2f CPU ms/call-s, %.0f KiB/call; "
          "ratio CPU %.2fx, RSS %.2fx" % (g(re_, "cpu_ms_per_call_s"), g(re_, "rss_per_call_kib"), g(ours_, "cpu_ms_per_call_s"),
          g(ours_, "rss_per_call_kib"), g(re_, "cpu_ms_per_call_s") / max(g(ours_, "cpu_ms_per_call_s"), 1e-9),
          g(re_, "rss_per_call_kib") / max(g(ours_, "rss_per_call_kib"), 1e-9)))
# The issue's targets, judged on this run (printed, never asserted).
num = {r[0]: r for r in rows}
def val(row, i):
    try:
        return float(row[i])
    except (TypeError, ValueError):
        return None
gw, kr = num.get("webrtc-phone"), num.get("kamailio+rtpengine")
def verdict(ok):
    return "met" if ok else "MISSED"
if gw:
    load, loss, rtt = val(gw, 3), val(gw, 6), val(gw, 7)
    print(f"target: at most half a core for the calls: {load:.1f} % of a core -> {verdict(load <= 50)}")
    print(f"target: 0 packets lost: {loss:.3f} % -> {verdict(loss == 0)}")
    print(f"target: p99 added latency under 2 ms: RTT p99 {rtt:.2f} ms through loadgen and SIPp on the same cores "
          f"-> {'met' if rtt < 2 else 'not shown (the round trip includes the harness)'}")
if gw and kr and val(gw, 4) and val(kr, 4):
    ratio = val(kr, 4) / val(gw, 4)
    print(f"target: 3x less CPU per call than rtpengine (4x the aim): {ratio:.2f}x -> {verdict(ratio >= 3)} "
          "(profile: perf/profile.sh; perf/README.md)")
if gw and kr and val(gw, 7) is not None and val(kr, 7) is not None:
    print(f"target: RTT p99 no worse than rtpengine's: {val(gw, 7):.2f} vs {val(kr, 7):.2f} ms -> {verdict(val(gw, 7) <= val(kr, 7))}")
if gw and val(gw, 15) is not None:
    print(f"target: CPU per received packet at most 1.5x the floor under load: {val(gw, 15):.2f}x -> {verdict(val(gw, 15) <= 1.5)}")
if gw and gwm:
    p99, p999 = quantile(gwm["res"], 0.99), quantile(gwm["res"], 0.999)
    print(f"target: residence p99 under 1 ms and p99.9 under 5 ms: {p99:.0f} / {p999:.0f} us -> {verdict(p99 < 1000 and p999 < 5000)}")
# Loss each way for webrtc-phone, from its per-call "call ended" log lines (a = browser leg,
# b = SIP leg) against what loadgen sent and got back.
import re
log = os.path.join(out, "gw", "gateway.log")
jp = os.path.join(out, "webrtc-phone.json")
if os.path.exists(log) and os.path.exists(jp):
    t = dict(a_in=0, a_out=0, b_in=0, b_out=0)
    for line in open(log, errors="replace"):
        if "call ended" in line:
            for k in t:
                m = re.search(r"\b%s=(\d+)" % k, line)
                t[k] += int(m.group(1)) if m else 0
    s = json.load(open(jp))["summary"]
    def pct(a, b):
        return "%d (%.3f %%)" % (a - b, (a - b) * 100.0 / a) if a else "-"
    # The gateway counts the browsers' RTCP reports in a_in and b_out; SIPp does not echo them.
    rtcp = s.get("rtcp_sent", 0)
    print("webrtc-phone loss each way: browser->gateway %s, gateway->SIPp->gateway %s, gateway->browser %s"
          % (pct(s["sent"] + rtcp, t["a_in"]), pct(t["b_out"] - rtcp, t["b_in"]), pct(t["a_out"], s["received"])))
print("Loss and RTT are round trip through the SIPp echo. Reports:", out)
PY
