//! The media node's IO edge: the ng UDP socket, the engine's notifications and the node's
//! timers, in one loop on the signaling thread. Everything else is [`crate::media_node::Node`].

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tracing::{info, warn};

use crate::media_node::{EndWhy, Node, NodeEvent};
use crate::metrics::{Metrics, NgLabels, RejectLabels};

/// The largest ng datagram read (Kamailio's own buffer is 256 KiB; a UDP datagram is < 64 KiB).
const MAX_DATAGRAM: usize = 65_536;

/// The eventfd of the engine, for tokio's readiness.
struct NotifyFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for NotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

/// The node loop's clock: read here, passed into the pure node as `now`.
fn clock() -> Instant {
    #[allow(clippy::disallowed_methods, reason = "the ng loop's one clock")]
    Instant::now()
}

/// Unix seconds, for `created` and `last signal` in queries.
fn wall() -> u64 {
    #[allow(
        clippy::disallowed_methods,
        reason = "the ng loop's wall clock, for query figures"
    )]
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Serves ng requests on `sock` until the task is dropped.
pub async fn serve(
    sock: tokio::net::UdpSocket,
    mut node: Node,
    mut engine: engine::EngineHandle,
    metrics: Arc<Metrics>,
) {
    // SAFETY: the eventfd belongs to `engine`, a local of this function that outlives
    // `notify` (declared after it, so dropped first) and never closes or replaces it meanwhile.
    let registered = unsafe { tokio::io::unix::AsyncFd::register(NotifyFd(engine.notify_fd())) };
    let notify = match registered {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the media engine's notifications");
            return;
        }
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = node.poll_timeout();
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = timer => node.handle_timeout(clock()),
            guard = notify.readable() => {
                if let Ok(mut g) = guard {
                    g.clear_ready();
                }
            }
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => node.handle_datagram(clock(), wall(), from, &buf[..n]),
                Err(e) => warn!(error = %e, "ng socket receive failed"),
            },
        }
        // Whatever woke the loop, the engine may have answered meanwhile.
        let now = clock();
        while let Some(out) = engine.try_recv() {
            node.handle_engine(now, out);
        }
        while let Some(cmd) = node.poll_command() {
            engine.send(cmd);
        }
        // The engine may answer some commands locally (a failed allocation) at once.
        while let Some(out) = engine.try_recv() {
            node.handle_engine(now, out);
        }
        while let Some((to, bytes)) = node.poll_transmit() {
            // A full socket buffer drops the reply; Kamailio retransmits and the cache answers.
            if let Err(e) = sock.try_send_to(&bytes, to) {
                warn!(error = %e, to = %to, "ng reply not sent");
            }
        }
        while let Some(ev) = node.poll_event() {
            record(&metrics, ev);
        }
        metrics
            .ng_calls_active
            .set(i64::try_from(node.calls()).unwrap_or(i64::MAX));
    }
}

fn record(metrics: &Metrics, ev: NodeEvent) {
    match ev {
        NodeEvent::Request { command, result } => {
            metrics
                .ng_requests
                .get_or_create(&NgLabels { command, result })
                .inc();
        }
        NodeEvent::CallCreated => {
            metrics.ng_calls_created.inc();
        }
        NodeEvent::CallEnded { why } => {
            let reason = match why {
                EndWhy::Deleted => "deleted",
                EndWhy::OfferTimeout => "offer_timeout",
                EndWhy::MediaTimeout => "media_timeout",
                EndWhy::AllocationFailed => "allocation_failed",
            };
            if why != EndWhy::Deleted {
                info!(reason, "ng call ended without a delete");
            }
            metrics
                .ng_calls_ended
                .get_or_create(&RejectLabels { reason })
                .inc();
        }
        NodeEvent::Ignored(what) => {
            info!(what = %what, "ng: ignoring (logged once)");
        }
    }
}
