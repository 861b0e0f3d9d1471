//! The media plane of webrtc-phone.
//!
//! `ports` plans how the RTP port range is split into one shard per media reactor; `proto` holds
//! the pure protocol machines (STUN, ICE-lite, DTLS, SRTP, sessions); `reactor` runs them on
//! io_uring, one pinned thread per shard. Signaling talks to it through [`EngineHandle`] with
//! the types of [`api`].

// `unsafe` is allowed only where a file says so: the reactor's ring.rs and os.rs, DTLS's ffi.rs
// and the libsrtp binding (srtp.rs); the pure modules forbid it.
#![deny(unsafe_code)]

pub mod api;
pub mod ports;
pub mod proto;
mod reactor;

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use api::{Command, Event, Failure, Output, Reply, SessionId};
use proto::dtls::{DtlsError, DtlsIdentity};
use proto::session::SessionConfig;
pub use proto::session::{Latching, DEFAULT_LEARNING_WINDOW};
pub use reactor::{
    Batching, ReactorSnapshot, ReactorStats, RESIDENCE_BOUNDS_US, RESIDENCE_BUCKETS,
};

/// Whether this build has the test-only fault hooks (feature `test-hooks`, enabled by the
/// workspace's dev-dependencies for `cargo test`; never in a release build of the binary).
pub const TEST_HOOKS: bool = cfg!(any(test, feature = "test-hooks"));

/// Test builds only: a datagram with exactly these bytes, arriving on any socket of a
/// session, makes that session panic inside the reactor (the panic-isolation fault test).
#[cfg(any(test, feature = "test-hooks"))]
pub const TEST_PANIC_PAYLOAD: &[u8] = b"panic in a session, please";

/// The default batching budget of a media reactor's wait, µs (`MEDIA_BATCH_US`): off. With
/// calls sending at their own phases (as independent browsers do), 100 and 300 µs cost more
/// CPU per call than waking for every completion and doubled the residence p99 (README,
/// Performance, 2026-12-06); a loaded reactor gathers several completions per wake-up anyway.
pub const DEFAULT_BATCH_US: u32 = 0;
/// The largest batching budget accepted, µs: a packet may wait this long for its wake-up.
pub const MAX_BATCH_US: u32 = 20_000;

/// How the media plane is laid out.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// One shard per reactor thread (see [`ports::plan_shards`]).
    pub shards: Vec<ports::Shard>,
    /// The address sockets bind to.
    pub bind: IpAddr,
    /// The address put in SDP (the host's public address when `bind` is a wildcard).
    pub advertise: IpAddr,
    /// No media for this long (no leg held) → [`api::Event::MediaTimeout`].
    pub media_timeout: Duration,
    /// How plain legs learn their far end's media source: [`Latching::Strict`] (from the SDP's
    /// IP only) or [`Latching::Heuristic`] (rtpengine's `heuristic`, for peers whose SDP
    /// address is wrong).
    pub latching: Latching,
    /// Batching budget of each reactor's wait, µs (0 = off: wake for every completion). See
    /// the `reactor` module: no completion waits longer than this for its wake-up.
    pub batch_us: u32,
    /// `SCHED_FIFO` priority of the reactor threads (1-99; 0 = normal scheduling). A process
    /// without the privilege (`CAP_SYS_NICE`) runs them normally and says so in
    /// [`EngineHandle::scheduling`].
    pub realtime_priority: u8,
}

/// How the reactor threads are scheduled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduling {
    /// The kernel's normal policy (`MEDIA_PRIORITY=0`).
    Normal,
    /// `SCHED_FIFO` at this priority.
    Realtime(u8),
    /// `SCHED_FIFO` was asked for and refused: normal scheduling, and why.
    Refused { priority: u8, reason: String },
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scheduling::Normal => write!(f, "normal"),
            Scheduling::Realtime(p) => write!(f, "SCHED_FIFO priority {p}"),
            Scheduling::Refused { priority, reason } => write!(
                f,
                "normal (SCHED_FIFO priority {priority} refused: {reason}; needs CAP_SYS_NICE)"
            ),
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No shard to run.
    #[error("no port shards: at least one media reactor is needed")]
    NoShards,
    /// A reactor's WebRTC port could not be bound.
    #[error("cannot bind the WebRTC port {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The DTLS certificate could not be made.
    #[error("DTLS identity: {0}")]
    Dtls(#[from] DtlsError),
    /// io_uring, eventfd or thread set-up failed.
    #[error("media reactor set-up failed: {0}")]
    Setup(#[source] io::Error),
}

/// Starts the media plane.
#[derive(Debug)]
pub struct Engine;

struct ReactorHandle {
    commands: Sender<reactor::Msg>,
    wake: Arc<OwnedFd>,
    stats: Arc<ReactorStats>,
    thread: Option<JoinHandle<()>>,
}

/// Signaling's handle on the running engine. `Send` but not `Sync`: one control task drives it.
///
/// ```text
/// let mut engine = Engine::start(cfg)?;
/// let ready = tokio::io::unix::AsyncFd::new(engine.notify_fd())?;   // a RawFd wrapper
/// engine.send(Command::Allocate { id, legs, video: false });
/// loop {
///     let mut guard = ready.readable().await?;
///     while let Some(out) = engine.try_recv() { handle(out) }           // clears the eventfd
///     guard.clear_ready();
/// }
/// ```
pub struct EngineHandle {
    reactors: Vec<ReactorHandle>,
    owners: HashMap<SessionId, usize>,
    /// Sessions per reactor, from `owners`.
    load: Vec<usize>,
    allocating: HashSet<SessionId>,
    outputs: Receiver<Output>,
    local: VecDeque<Output>,
    notify: Arc<OwnedFd>,
    fingerprint: String,
    batching: Batching,
    scheduling: Scheduling,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("reactors", &self.reactors.len())
            .field("sessions", &self.owners.len())
            .finish()
    }
}

impl Engine {
    /// Binds every reactor's WebRTC port, generates the process-wide DTLS certificate and starts
    /// one reactor thread per shard.
    pub fn start(cfg: EngineConfig) -> Result<EngineHandle, EngineError> {
        Self::start_with(cfg, true)
    }

    /// [`Engine::start`]; `kernel_batching` false makes a batching budget a linger in user space
    /// even where the kernel has min-wait (the tests exercise both).
    pub(crate) fn start_with(
        cfg: EngineConfig,
        kernel_batching: bool,
    ) -> Result<EngineHandle, EngineError> {
        if cfg.shards.is_empty() {
            return Err(EngineError::NoShards);
        }
        #[allow(
            clippy::disallowed_methods,
            reason = "start-up: the certificate's validity window starts from the wall clock"
        )]
        let identity = DtlsIdentity::generate(SystemTime::now())?;
        let sockets = cfg
            .shards
            .iter()
            .map(|s| {
                let addr = SocketAddr::new(cfg.bind, s.webrtc_port);
                #[allow(
                    clippy::disallowed_methods,
                    reason = "start-up binds each shard's WebRTC port before its reactor runs"
                )]
                UdpSocket::bind(addr).map_err(|source| EngineError::Bind { addr, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (out_tx, out_rx) = crossbeam_channel::unbounded();
        let notify = Arc::new(reactor::eventfd(true).map_err(EngineError::Setup)?);
        let config = SessionConfig {
            media_timeout: cfg.media_timeout,
            latching: cfg.latching,
            ..SessionConfig::default()
        };
        let count = cfg.shards.len();
        let mut handle = EngineHandle {
            reactors: Vec::with_capacity(count),
            owners: HashMap::new(),
            load: vec![0; count],
            allocating: HashSet::new(),
            outputs: out_rx,
            local: VecDeque::new(),
            notify: notify.clone(),
            fingerprint: identity.fingerprint().to_sdp(),
            // What the reactors' rings allow, told by each reactor when it is ready.
            batching: Batching::Off,
            scheduling: Scheduling::Normal,
        };
        let priority = cfg.realtime_priority;
        let (sched_tx, sched_rx) = crossbeam_channel::bounded(count);
        for (index, (shard, webrtc)) in cfg.shards.iter().zip(sockets).enumerate() {
            let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
            let wake = Arc::new(reactor::eventfd(false).map_err(EngineError::Setup)?);
            let stats = Arc::new(ReactorStats::default());
            let init = reactor::ReactorInit {
                shard: shard.clone(),
                webrtc,
                bind: cfg.bind,
                advertise: cfg.advertise,
                identity: identity.clone(),
                config: config.clone(),
                commands: cmd_rx,
                wake: wake.clone(),
                outputs: out_tx.clone(),
                notify: notify.clone(),
                stats: stats.clone(),
                batch_us: cfg.batch_us,
                kernel_batching,
            };
            let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
            #[allow(
                clippy::disallowed_methods,
                reason = "the one place media reactor threads are created"
            )]
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn({
                    let sched_tx = sched_tx.clone();
                    move || {
                        reactor::pin(index, count);
                        let _ = sched_tx.send(reactor::set_realtime(priority));
                        reactor::run(init, ready_tx);
                    }
                })
                .map_err(EngineError::Setup)?;
            let ready = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("media reactor died at start-up")));
            handle.reactors.push(ReactorHandle {
                commands: cmd_tx,
                wake,
                stats,
                thread: Some(thread),
            });
            match ready {
                Ok(batching) => handle.batching = batching,
                Err(e) => {
                    handle.stop();
                    return Err(EngineError::Setup(e));
                }
            }
        }
        handle.scheduling = match sched_rx.try_iter().find_map(Result::err) {
            _ if priority == 0 => Scheduling::Normal,
            None => Scheduling::Realtime(priority),
            Some(e) => Scheduling::Refused {
                priority,
                reason: e.to_string(),
            },
        };
        Ok(handle)
    }
}

impl EngineHandle {
    /// Hands a command to the reactor that owns the session; a new session goes to the reactor
    /// with the fewest sessions. The answer comes back through [`EngineHandle::try_recv`].
    pub fn send(&mut self, cmd: Command) {
        let target = match &cmd {
            Command::Allocate { id, .. } => {
                if self.owners.contains_key(id) {
                    let failure = Failure::BadRequest("session id already allocated".into());
                    return self.answer_locally(Reply::Failed { id: *id, failure });
                }
                let r = (0..self.load.len())
                    .min_by_key(|&i| self.load[i])
                    .expect("at least one reactor");
                self.owners.insert(*id, r);
                self.load[r] += 1;
                self.allocating.insert(*id);
                Some(r)
            }
            Command::Update { id, .. } | Command::Release { id } | Command::Query { id } => {
                self.owners.get(id).copied()
            }
        };
        let Some(r) = target else {
            let id = cmd.id();
            let failure = Failure::UnknownSession;
            return self.answer_locally(Reply::Failed { id, failure });
        };
        let reactor = &self.reactors[r];
        match reactor.commands.send(reactor::Msg::Command(Box::new(cmd))) {
            Ok(()) => reactor::write_eventfd(reactor.wake.as_raw_fd()),
            Err(crossbeam_channel::SendError(msg)) => {
                // The reactor thread is gone (its ring failed): say so rather than go quiet.
                if let reactor::Msg::Command(cmd) = msg {
                    let id = cmd.id();
                    self.forget(id);
                    let failure = Failure::BadRequest("the media reactor stopped".into());
                    self.answer_locally(Reply::Failed { id, failure });
                }
            }
        }
    }

    /// Queues a reply the handle gives itself, and raises the notification like a reactor would.
    fn answer_locally(&mut self, reply: Reply) {
        self.local.push_back(Output::Reply(reply));
        reactor::write_eventfd(self.notify.as_raw_fd());
    }

    /// The session is gone: it no longer counts towards its reactor's load.
    fn forget(&mut self, id: SessionId) {
        self.allocating.remove(&id);
        if let Some(r) = self.owners.remove(&id) {
            self.load[r] -= 1;
        }
    }

    /// The next reply or event, if any. Clears [`EngineHandle::notify_fd`] when nothing is left.
    pub fn try_recv(&mut self) -> Option<Output> {
        if let Some(o) = self.local.pop_front() {
            return Some(o);
        }
        let out = match self.outputs.try_recv() {
            Ok(o) => o,
            Err(_) => {
                // Clear the notification first, then look again, so an output that raced in
                // is not left without a wake-up.
                reactor::read_eventfd(self.notify.as_raw_fd());
                self.outputs.try_recv().ok()?
            }
        };
        match &out {
            Output::Reply(Reply::Allocated { id, .. }) => {
                self.allocating.remove(id);
            }
            Output::Reply(Reply::Failed { id, .. }) if self.allocating.contains(id) => {
                self.forget(*id);
            }
            Output::Event(Event::Released { id, .. }) => self.forget(*id),
            _ => {}
        }
        Some(out)
    }

    /// An eventfd that is readable while outputs wait (register it with tokio's `AsyncFd`; read
    /// 8 bytes to clear it, or let [`EngineHandle::try_recv`] clear it when it runs dry).
    pub fn notify_fd(&self) -> RawFd {
        self.notify.as_raw_fd()
    }

    /// How the reactors batch their waits (for the start-up log line).
    pub fn batching(&self) -> Batching {
        self.batching
    }

    /// How the reactor threads are scheduled (for the start-up log line).
    pub fn scheduling(&self) -> &Scheduling {
        &self.scheduling
    }

    /// `sha-256 AB:CD:...`: the process-wide DTLS certificate's fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Each reactor's counters, in shard order.
    pub fn stats(&self) -> Vec<ReactorSnapshot> {
        self.reactors.iter().map(|r| r.stats.snapshot()).collect()
    }

    /// The live counters of each reactor (for a metrics collector that reads them itself).
    pub fn stats_handles(&self) -> Vec<Arc<ReactorStats>> {
        self.reactors.iter().map(|r| r.stats.clone()).collect()
    }

    /// Stops every reactor (their sessions are released, with `Event::Released` each) and
    /// waits for the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for r in &self.reactors {
            if r.commands.send(reactor::Msg::Shutdown).is_ok() {
                reactor::write_eventfd(r.wake.as_raw_fd());
            }
        }
        for r in &mut self.reactors {
            if let Some(t) = r.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_can_move_to_the_signaling_task() {
        fn is_send<T: Send>() {}
        is_send::<EngineHandle>();
        is_send::<Output>();
    }

    #[test]
    fn no_shards_is_an_error() {
        let err = Engine::start(EngineConfig {
            shards: Vec::new(),
            bind: "127.0.0.1".parse().unwrap(),
            advertise: "127.0.0.1".parse().unwrap(),
            media_timeout: Duration::from_secs(60),
            latching: Latching::Strict,
            batch_us: 0,
            realtime_priority: 0,
        })
        .unwrap_err();
        assert!(matches!(err, EngineError::NoShards));
    }
}
