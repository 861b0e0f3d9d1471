#!/bin/sh
# Stops what start-kamailio-rtpengine.sh started, by the PIDs it recorded (never by name).
RUN_DIR=${RUN_DIR:-$PWD/run-comparison}
for f in sipp-uas edge registrar rtpengine node2; do
	pidf="$RUN_DIR/$f.pid"
	[ -s "$pidf" ] || continue
	pid=$(cat "$pidf")
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$f (pid $pid) still running after SIGTERM, sending SIGKILL" >&2
			kill -KILL "$pid"
		fi
		echo "stopped $f (pid $pid)"
	fi
	rm -f "$pidf"
done
rm -f "$RUN_DIR/rtpengine.pid.daemon"
