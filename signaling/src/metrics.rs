//! The `/metrics` endpoint's registry (Prometheus text format, prometheus-client).
//!
//! Process figures are read from `/proc` at scrape time; the signaling and media planes update
//! their own gauges and counters.

use crate::b2bua::core::CoreEvent;
use std::sync::Arc;
use tracing::{debug, info};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Which listener a connection came in on, and what it became.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnLabels {
    /// `https` or `wss`.
    pub listener: &'static str,
    /// `tls` (any accepted TLS connection) or `websocket` (an upgraded SIP WebSocket).
    pub kind: &'static str,
}

/// Every metric the process exports.
pub struct Metrics {
    registry: Registry,
    pub connections: Family<ConnLabels, Gauge>,
    pub connections_total: Family<ConnLabels, Counter>,
    /// Connections closed for breaking a limit (header size, message size, idle, missed pongs).
    pub connections_rejected: Family<RejectLabels, Counter>,
    pub registrations: Gauge,
    pub calls_active: Gauge,
    pub calls_total: Counter,
    pub sip_messages_received: Family<TransportLabels, Counter>,
    /// Malformed SIP: requests answered with an error (`rejected`) or messages dropped.
    pub sip_malformed: Family<MalformedLabels, Counter>,
    pub sip_responses_sent: Family<CodeLabels, Counter>,
    /// What the media engine reported, by event.
    pub media_events: Family<EventLabels, Counter>,
    /// INVITE received to 2xx sent.
    pub call_setup: Histogram,
    /// Calls ended, by who hung up.
    pub calls_ended: Family<ByLabels, Counter>,
    /// SIP messages shed for safety (rate, source, budget), by reason.
    pub sip_dropped: Family<RejectLabels, Counter>,
    /// New calls refused by a limit, by which.
    pub calls_refused: Family<RejectLabels, Counter>,
    /// The ng node (MODE=media or NG_LISTEN): calls in its table.
    pub ng_calls_active: Gauge,
    /// The ng node: calls created (first offers).
    pub ng_calls_created: Counter,
    /// The ng node: calls ended, by why.
    pub ng_calls_ended: Family<RejectLabels, Counter>,
    /// The ng node: requests answered, by command and result.
    pub ng_requests: Family<NgLabels, Counter>,
}

/// An ng command and its result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NgLabels {
    pub command: &'static str,
    pub result: &'static str,
}

impl Metrics {
    /// What the signaling core reported: counted here, and logged (one line per call).
    pub fn record(&self, ev: CoreEvent) {
        match ev {
            CoreEvent::Rejected {
                transport,
                status,
                reason,
            } => {
                self.sip_malformed
                    .get_or_create(&MalformedLabels {
                        transport,
                        action: "rejected",
                    })
                    .inc();
                debug!(transport, status, reason, "malformed SIP request rejected");
            }
            CoreEvent::Dropped { transport, reason } => {
                self.sip_malformed
                    .get_or_create(&MalformedLabels {
                        transport,
                        action: "dropped",
                    })
                    .inc();
                debug!(transport, reason, "SIP message dropped");
            }
            CoreEvent::Shed { reason } => {
                self.sip_dropped
                    .get_or_create(&RejectLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
            }
            CoreEvent::CallRefused { reason } => {
                self.calls_refused
                    .get_or_create(&RejectLabels {
                        reason: reason.as_str(),
                    })
                    .inc();
                debug!(reason = reason.as_str(), "call refused by a limit");
            }
            CoreEvent::Responded { status } => {
                self.sip_responses_sent
                    .get_or_create(&CodeLabels { code: status })
                    .inc();
            }
            CoreEvent::Registration {
                aor,
                conn,
                status,
                expires,
            } => {
                if (200..300).contains(&status) && expires > 0 {
                    info!(%aor, %conn, status, expires, "registered");
                } else if (200..300).contains(&status) {
                    info!(%aor, %conn, status, "unregistered");
                } else {
                    info!(%aor, %conn, status, "registration failed");
                }
            }
            CoreEvent::CallStarted { call_id, from, to } => {
                self.calls_total.inc();
                info!(%call_id, %from, %to, "call started");
            }
            CoreEvent::Media { event } => {
                self.media_events
                    .get_or_create(&EventLabels { event })
                    .inc();
            }
            CoreEvent::CallAnswered { id, setup } => {
                self.call_setup.observe(setup.as_secs_f64());
                info!(
                    session = id.0,
                    setup_ms = setup.as_millis() as u64,
                    "call answered"
                );
            }
            CoreEvent::CallEnded(r) => {
                self.calls_ended
                    .get_or_create(&ByLabels {
                        hung_up_by: r.by.as_str(),
                    })
                    .inc();
                // One line per call (A = the caller's leg, B = the callee's): packets each
                // way, RTP lost and jitter (timestamp units) as each leg received them.
                let m = r.media.unwrap_or_default();
                let [a, b] = m.legs;
                info!(
                    session = r.id.0,
                    call_id = %r.call_id,
                    from = %r.from,
                    to = %r.to,
                    outcome = r.outcome.as_str(),
                    status = r.status,
                    hung_up_by = r.by.as_str(),
                    answered = r.answered,
                    duration_s = r.duration.as_secs_f64(),
                    media = r.media.is_some(),
                    a_in = a.packets_in,
                    a_out = a.packets_out,
                    a_lost = a.lost,
                    a_jitter = a.jitter,
                    b_in = b.packets_in,
                    b_out = b.packets_out,
                    b_lost = b.lost,
                    b_jitter = b.jitter,
                    "call ended"
                );
            }
            CoreEvent::MediaStats { id, stats } => {
                let [a, b] = stats.legs;
                info!(
                    session = id.0,
                    a_in = a.packets_in,
                    a_out = a.packets_out,
                    a_lost = a.lost,
                    a_jitter = a.jitter,
                    b_in = b.packets_in,
                    b_out = b.packets_out,
                    b_lost = b.lost,
                    b_jitter = b.jitter,
                    "call media"
                );
            }
        }
    }
}

/// A media engine event name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub event: &'static str,
}

/// Who ended a call: caller, callee or gateway.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ByLabels {
    pub hung_up_by: &'static str,
}

/// How a malformed SIP message was handled.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MalformedLabels {
    pub transport: &'static str,
    pub action: &'static str,
}

/// A SIP status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: u16,
}

/// Why a connection was closed by us.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectLabels {
    pub reason: &'static str,
}

/// Which transport carried a SIP message.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabels {
    pub transport: &'static str,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Self::new_with_media(Vec::new())
    }

    /// With the media reactors' counters exported as well.
    pub fn new_with_media(reactors: Vec<Arc<engine::ReactorStats>>) -> Arc<Self> {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        root.register_collector(Box::new(MediaCollector(reactors)));
        let reg = root.sub_registry_with_prefix("webrtc_phone");
        let connections = Family::<ConnLabels, Gauge>::default();
        let connections_total = Family::<ConnLabels, Counter>::default();
        let connections_rejected = Family::<RejectLabels, Counter>::default();
        let registrations = Gauge::default();
        let calls_active = Gauge::default();
        let calls_total = Counter::default();
        let sip_messages_received = Family::<TransportLabels, Counter>::default();
        reg.register(
            "connections",
            "Open connections by listener and kind",
            connections.clone(),
        );
        reg.register(
            "connections_accepted",
            "Accepted connections by listener and kind",
            connections_total.clone(),
        );
        reg.register(
            "connections_rejected",
            "Connections closed for breaking a limit, by reason",
            connections_rejected.clone(),
        );
        reg.register(
            "registrations",
            "Registrations currently known through this gateway",
            registrations.clone(),
        );
        reg.register("calls_active", "Calls in progress", calls_active.clone());
        reg.register("calls_started", "Calls started", calls_total.clone());
        reg.register(
            "sip_messages_received",
            "SIP messages received by transport",
            sip_messages_received.clone(),
        );
        let sip_malformed = Family::<MalformedLabels, Counter>::default();
        let sip_responses_sent = Family::<CodeLabels, Counter>::default();
        reg.register(
            "sip_malformed",
            "Malformed SIP messages, rejected with a response or dropped",
            sip_malformed.clone(),
        );
        reg.register(
            "sip_responses_sent",
            "SIP responses sent by status code",
            sip_responses_sent.clone(),
        );
        let media_events = Family::<EventLabels, Counter>::default();
        reg.register(
            "media_events",
            "Media engine events (ICE, DTLS, consent, timeouts)",
            media_events.clone(),
        );
        let call_setup = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ]);
        reg.register_with_unit(
            "call_setup",
            "INVITE received to 2xx sent",
            Unit::Seconds,
            call_setup.clone(),
        );
        let calls_ended = Family::<ByLabels, Counter>::default();
        reg.register(
            "calls_ended",
            "Calls ended, by who hung up",
            calls_ended.clone(),
        );
        let sip_dropped = Family::<RejectLabels, Counter>::default();
        reg.register(
            "sip_dropped",
            "SIP messages dropped unanswered for safety, by reason (rate_limited, \
             response_source, not_a_peer, refusal_budget, too_large_answer)",
            sip_dropped.clone(),
        );
        let calls_refused = Family::<RejectLabels, Counter>::default();
        reg.register(
            "calls_refused",
            "New calls refused by a limit (per_connection, per_address, total, transactions)",
            calls_refused.clone(),
        );
        let ng_calls_active = Gauge::default();
        reg.register(
            "ng_calls_active",
            "ng node: calls in the table",
            ng_calls_active.clone(),
        );
        let ng_calls_created = Counter::default();
        reg.register(
            "ng_calls_created",
            "ng node: calls created by an offer",
            ng_calls_created.clone(),
        );
        let ng_calls_ended = Family::<RejectLabels, Counter>::default();
        reg.register(
            "ng_calls_ended",
            "ng node: calls ended (deleted, offer_timeout, media_timeout, allocation_failed)",
            ng_calls_ended.clone(),
        );
        let ng_requests = Family::<NgLabels, Counter>::default();
        reg.register(
            "ng_requests",
            "ng node: requests answered, by command and result (ok, pong, error, load_limit)",
            ng_requests.clone(),
        );
        reg.sub_registry_with_prefix("build")
            .register_collector(Box::new(BuildInfo));
        Arc::new(Metrics {
            registry: root,
            connections,
            connections_total,
            connections_rejected,
            registrations,
            calls_active,
            calls_total,
            sip_messages_received,
            sip_malformed,
            sip_responses_sent,
            media_events,
            call_setup,
            calls_ended,
            sip_dropped,
            calls_refused,
            ng_calls_active,
            ng_calls_created,
            ng_calls_ended,
            ng_requests,
        })
    }

    /// Counts a connection as accepted and open until the guard drops.
    pub fn track_connection(self: &Arc<Self>, labels: ConnLabels) -> ConnGuard {
        self.connections_total.get_or_create(&labels).inc();
        self.connections.get_or_create(&labels).inc();
        ConnGuard {
            metrics: self.clone(),
            labels,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the open-connections gauge when the connection ends.
pub struct ConnGuard {
    metrics: Arc<Metrics>,
    labels: ConnLabels,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.metrics.connections.get_or_create(&self.labels).dec();
    }
}

/// Reads one counter of a reactor snapshot.
type SnapshotField = fn(&engine::ReactorSnapshot) -> u64;

/// Per-reactor packets, bytes, drops by reason, sessions (read at scrape time).
#[derive(Debug)]
struct MediaCollector(Vec<Arc<engine::ReactorStats>>);

impl Collector for MediaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        let snaps: Vec<_> = self.0.iter().map(|r| r.snapshot()).collect();
        let counters: [(&str, &str, SnapshotField); 8] = [
            (
                "webrtc_phone_media_wakeups",
                "Returns from each media reactor's wait (completions per wake-up = completions / wakeups)",
                |s| s.wakeups,
            ),
            (
                "webrtc_phone_media_completions",
                "io_uring completions handled by each media reactor",
                |s| s.completions,
            ),
            (
                "webrtc_phone_media_packets_received",
                "Datagrams received by each media reactor",
                |s| s.packets_in,
            ),
            (
                "webrtc_phone_media_bytes_received",
                "Bytes received by each media reactor",
                |s| s.bytes_in,
            ),
            (
                "webrtc_phone_media_packets_sent",
                "Datagrams sent by each media reactor",
                |s| s.packets_out,
            ),
            (
                "webrtc_phone_media_bytes_sent",
                "Bytes sent by each media reactor",
                |s| s.bytes_out,
            ),
            (
                "webrtc_phone_media_send_errors",
                "Sends the kernel refused",
                |s| s.send_errors,
            ),
            (
                "webrtc_phone_media_session_panics",
                "Sessions torn down because they panicked",
                |s| s.panics,
            ),
        ];
        for (name, help, get) in counters {
            let mut fam = encoder.encode_descriptor(
                name,
                help,
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (i, s) in snaps.iter().enumerate() {
                let reactor = i.to_string();
                let labels = [("reactor", reactor.as_str())];
                ConstCounter::new(get(s)).encode(fam.encode_family(&labels)?)?;
            }
        }
        let mut fam = encoder.encode_descriptor(
            "webrtc_phone_media_sessions",
            "Live media sessions on each reactor",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (i, s) in snaps.iter().enumerate() {
            let reactor = i.to_string();
            ConstGauge::new(s.sessions as i64)
                .encode(fam.encode_family(&[("reactor", reactor.as_str())])?)?;
        }
        let mut fam = encoder.encode_descriptor(
            "webrtc_phone_media_residence",
            "Time each forwarded packet spent in the gateway: kernel receive timestamp to send submission",
            Some(&Unit::Seconds),
            prometheus_client::metrics::MetricType::Histogram,
        )?;
        for (i, s) in snaps.iter().enumerate() {
            let reactor = i.to_string();
            let buckets: Vec<(f64, u64)> = s
                .residence
                .iter()
                .enumerate()
                .map(|(b, &n)| {
                    let le = engine::RESIDENCE_BOUNDS_US
                        .get(b)
                        .map_or(f64::MAX, |&us| us as f64 / 1e6);
                    (le, n)
                })
                .collect();
            fam.encode_family(&[("reactor", reactor.as_str())])?
                .encode_histogram::<NoLabelSet>(
                    s.residence_sum_ns as f64 / 1e9,
                    s.residence_count(),
                    &buckets,
                    None,
                )?;
        }
        let mut fam = encoder.encode_descriptor(
            "webrtc_phone_media_dropped",
            "Datagrams dropped by each media reactor, by reason",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (i, s) in snaps.iter().enumerate() {
            let reactor = i.to_string();
            for r in engine::proto::stats::DropReason::ALL {
                let labels = [("reactor", reactor.as_str()), ("reason", r.name())];
                ConstCounter::new(s.drops.get(r)).encode(fam.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct BuildInfo;

impl Collector for BuildInfo {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = ConstGauge::new(1i64);
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        let mut metric =
            encoder.encode_descriptor("info", "Build information", None, g.metric_type())?;
        g.encode(metric.encode_family(&labels)?)?;
        Ok(())
    }
}

/// The standard `process_*` metrics, read from `/proc/self` at scrape time.
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(p) = ProcStat::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        for (name, help, unit, value) in [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                p.rss_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                p.vsize_bytes as f64,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                p.open_fds as f64,
            ),
            ("process_threads", "OS threads", None, p.threads as f64),
            (
                "process_start_time",
                "Start time since the Unix epoch",
                Some(Unit::Seconds),
                p.start_time,
            ),
        ] {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
        }
        Ok(())
    }
}

struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: u64,
    vsize_bytes: u64,
    threads: u64,
    open_fds: u64,
    start_time: f64,
}

impl ProcStat {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
        // Indices are field numbers from proc(5) minus 3: utime 14, stime 15, threads 20,
        // starttime 22, vsize 23, rss 24.
        let cpu_seconds = (num(11)? + num(12)?) as f64 / tck;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| {
                l.strip_prefix("btime ")
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })?;
        Some(ProcStat {
            cpu_seconds,
            threads: num(17)?,
            start_time: boot as f64 + num(19)? as f64 / tck,
            vsize_bytes: num(20)?,
            rss_bytes: num(21)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_has_process_and_gateway_metrics() {
        let m = Metrics::new();
        m.calls_total.inc();
        m.connections
            .get_or_create(&ConnLabels {
                listener: "https",
                kind: "tls",
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains("# TYPE process_cpu_seconds counter"),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(
            text.contains("webrtc_phone_calls_started_total 1"),
            "{text}"
        );
        assert!(
            text.contains("webrtc_phone_connections{listener=\"https\",kind=\"tls\"} 1"),
            "{text}"
        );
        assert!(text.contains("webrtc_phone_build_info{version="), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
