# Sourced by the bench and perf scripts: processes they start are stopped by PID (SIGTERM,
# then SIGKILL after 5 s), and -B's kernel default receive buffer is put back, at exit.
#   PIDS+=($!)          after starting a process
#   raise_rmem BYTES    for -B (SIPp has no option for its RTP echo socket's receive buffer:
#                       -buff_size covers its SIP sockets only; this raises
#                       net.core.rmem_default for the run, every new socket alike)
#   wait_listening LOG  until the gateway logged "webrtc-phone listening" (10 s), else fail
PIDS=()
RMEM_SAVED=
stop_pid() {
	kill -0 "$1" 2>/dev/null || return 0
	kill -TERM "$1" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
	kill -KILL "$1" 2>/dev/null || true
}
raise_rmem() {
	RMEM_SAVED=$(sysctl -n net.core.rmem_default)
	sysctl -qw net.core.rmem_default="$1" || { echo "-B needs root (sysctl net.core.rmem_default)"; exit 2; }
	echo "net.core.rmem_default $RMEM_SAVED -> $1 for this run"
}
restore_rmem() { [ -z "$RMEM_SAVED" ] || sysctl -qw net.core.rmem_default="$RMEM_SAVED"; }
stop_all() {
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	PIDS=()
	restore_rmem
}
wait_listening() {
	for _ in $(seq 100); do grep -q "webrtc-phone listening" "$1" && return 0; sleep 0.1; done
	cat "$1"
	return 1
}
