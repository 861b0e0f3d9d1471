//! The media reactors: the only IO of the engine. One thread per port shard, pinned when there
//! are cores to spare, owning its sessions outright, so no lock guards a session and a packet can
//! never reach a released one (the table lookup fails, the packet is dropped and counted).
//!
//! Per reactor: one io_uring (`SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN`) whose operations
//! name the sockets by their slot in its registered file table, one provided
//! buffer ring shared by a multishot `RecvMsgMulti` on every socket (the shard's WebRTC socket and
//! an RTP/RTCP pair per plain leg, a second one for its video section), sends straight from the
//! received buffer, sorted deadlines for the sessions' timers, and commands over a crossbeam
//! channel with an eventfd read SQE to wake the ring. Outputs go back over a crossbeam channel
//! and an eventfd signaling polls.
//!
//! ```text
//! loop {
//!     now = clock()                     // the one clock read per iteration
//!     completions: recv → session.handle_datagram → Send from the same buffer, or recycle
//!                  send → recycle; wake → drain commands
//!     due timers → session.handle_timeout
//!     publish recycled buffers; residence of this batch's sends (one realtime clock read)
//!     submit and wait until the next deadline, gathering completions for up to the batch
//!     budget (io_uring min-wait, or a bounded linger where the kernel has none)
//! }
//! ```
//!
//! Batching: with a budget B (`MEDIA_BATCH_US`, default 0 = off), the reactor sleeps until
//! `ring::BATCH_WANT` completions are in or B has passed, then wakes for the first one; on this
//! kernel that is io_uring's min-wait, on one without it (before 6.12) the same in user space (a
//! wait for one completion; if it came sooner than B after the reactor went to sleep, a sleep
//! for the rest of B, then everything that came meanwhile). So a busy reactor takes many
//! completions per wake-up, no completion waits longer than B for its wake-up, and a quiet
//! reactor wakes for its next packet at once.
//!
//! Residence: every socket has `SO_TIMESTAMPNS`, so each received datagram carries the
//! kernel's receive time (`CLOCK_REALTIME`) in the multishot recvmsg's control data. A forwarded
//! packet's residence is that stamp to the moment its send is submitted (the clock is read once
//! per loop iteration, just before the submit), kept in a fixed-bucket histogram per reactor.

// `unsafe` lives in `ring` (the io_uring and its buffers) and `os` (socket options, eventfds,
// clocks); the loop, the table and the counters are safe code.
#![deny(unsafe_code)]

mod os;
mod ring;
mod sockets;
mod stats;
mod table;

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::api::{Command, Event, Failure, LegIndex, LegSpec, Output, Reply, SessionId};
use crate::ports::Shard;
use crate::proto::dtls::DtlsIdentity;
use crate::proto::entropy::OpenSslEntropy;
use crate::proto::ice::local_ufrag_of;
use crate::proto::session::{LocalAddrs, Session, SessionConfig, Socket, Stream, Verdict};
use crate::proto::stats::DropReason;
use crate::proto::wire::{demux, PacketKind};
pub(crate) use os::{eventfd, pin, read_eventfd, set_realtime, write_eventfd};
pub use ring::Batching;
use ring::{File, Received, Ring};
use sockets::{Owner, Sockets};
pub use stats::{ReactorSnapshot, ReactorStats, RESIDENCE_BOUNDS_US, RESIDENCE_BUCKETS};
use table::{Key, Routed, Table};

/// Longest wait when no timer is armed (commands and packets wake the ring anyway).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Shortest timer wait: a re-armed timer that is already due (OpenSSL's DTLS timer runs on the
/// wall clock and may lag ours by a few ms) must not spin the loop.
const MIN_TIMER_WAIT: Duration = Duration::from_millis(1);
/// Commands handled per loop iteration, so a burst of allocations cannot starve media.
const COMMAND_BUDGET: usize = 64;

/// What a completion is about, in the top byte of its `user_data`.
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_WAKE: u64 = 3;
const OP_CANCEL: u64 = 4;

fn ud(op: u64, a: u64) -> u64 {
    (op << 56) | (a & ((1 << 56) - 1))
}

/// A message to a reactor.
#[derive(Debug)]
pub(crate) enum Msg {
    Command(Box<Command>),
    Shutdown,
}

/// Everything a reactor thread starts with.
pub(crate) struct ReactorInit {
    pub(crate) shard: Shard,
    pub(crate) webrtc: UdpSocket,
    pub(crate) bind: IpAddr,
    pub(crate) advertise: IpAddr,
    pub(crate) identity: DtlsIdentity,
    pub(crate) config: SessionConfig,
    pub(crate) commands: Receiver<Msg>,
    pub(crate) wake: Arc<OwnedFd>,
    pub(crate) outputs: Sender<Output>,
    pub(crate) notify: Arc<OwnedFd>,
    pub(crate) stats: Arc<ReactorStats>,
    /// Batching budget, µs (0 = off); min-wait or a linger as the ring's kernel allows.
    pub(crate) batch_us: u32,
    /// Whether the budget may use the kernel's min-wait (else always the user-space linger).
    pub(crate) kernel_batching: bool,
}

/// An RTP/RTCP pair bound from the shard: the even port, and its two sockets.
type BoundPair = (u16, UdpSocket, UdpSocket);

impl Routed for Session {
    fn routes(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        Session::routes(self)
    }
    fn ufrags(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ice_ufrags().map(str::as_bytes)
    }
}

/// One reactor's state; lives on its thread.
struct Reactor {
    ring: Ring,
    init: ReactorInit,
    socks: Sockets,
    table: Table<Session>,
    free_pairs: std::collections::VecDeque<u16>,
    rearm: Vec<usize>,
    wake_lost: bool,
    due: Vec<Key>,
    cqes: Vec<(u64, i32, u32)>,
    /// Kernel receive stamps (ns since the epoch) of the sends queued this iteration.
    resident: Vec<u64>,
    batching: Batching,
    local: ReactorSnapshot,
    /// Where sessions get their ICE credentials: OpenSSL's CSPRNG.
    entropy: OpenSslEntropy,
    outputs_pending: bool,
    shutdown: bool,
}

/// Runs a reactor until shutdown; `ready` hears whether start-up worked, and the batching its
/// ring allows.
pub(crate) fn run(init: ReactorInit, ready: Sender<io::Result<Batching>>) {
    let mut reactor = match Reactor::new(init) {
        Ok(r) => {
            let _ = ready.send(Ok(r.batching));
            r
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    reactor.run();
}

impl Reactor {
    fn new(init: ReactorInit) -> io::Result<Self> {
        // A registered file for each socket the shard can hold: the WebRTC one, two per pair.
        let ring = Ring::new(init.bind.is_ipv6(), init.shard.pair_count() * 2 + 1)?;
        let batching =
            Batching::from_budget(init.batch_us, init.kernel_batching && ring.has_min_wait());
        let free_pairs = init.shard.pair_bases.iter().copied().collect();
        let mut r = Self {
            ring,
            socks: Sockets::new(),
            table: Table::new(),
            free_pairs,
            rearm: Vec::new(),
            wake_lost: false,
            due: Vec::new(),
            cqes: Vec::with_capacity(ring::SQ_ENTRIES as usize * 2),
            resident: Vec::with_capacity(ring::ALL_BUFFERS),
            batching,
            local: ReactorSnapshot::default(),
            entropy: OpenSslEntropy,
            outputs_pending: false,
            shutdown: false,
            init,
        };
        let webrtc = r.init.webrtc.try_clone()?;
        let s = r.add_socket(webrtc, Owner::WebRtc);
        r.arm_recv(s);
        r.arm_wake();
        Ok(r)
    }

    fn add_socket(&mut self, sock: UdpSocket, owner: Owner) -> usize {
        os::enable_rx_stamps(&sock);
        if matches!(owner, Owner::WebRtc) {
            // Every browser of this reactor sends to this one socket: at 25,000 packets a
            // second the kernel's default 208 KiB holds only tens of milliseconds, and the load
            // generator saw receive-buffer drops at 500 calls. Plain legs keep the default.
            os::set_socket_buffers(&sock, os::WEBRTC_SOCKET_BUFFER);
        }
        let fd = sock.as_raw_fd();
        let slot = self.socks.add(sock, owner);
        let file = self.ring.register_file(slot, fd);
        self.socks.set_file(slot, file);
        slot
    }

    fn arm_recv(&mut self, slot: usize) {
        let Some(file) = self.socks.file(slot) else {
            return;
        };
        if !self
            .ring
            .recv_multi(file, ud(OP_RECV, self.socks.tag(slot)))
        {
            // Try again on the next iteration rather than lose the socket.
            self.rearm.push(slot);
        }
    }

    fn arm_wake(&mut self) {
        if !self
            .ring
            .read_wake(self.init.wake.as_raw_fd(), ud(OP_WAKE, 0))
        {
            // Without the wake read commands would stall: poll them from the loop instead.
            self.wake_lost = true;
        }
    }

    fn close_socket(&mut self, slot: usize) {
        if let Some(File::Fixed(i)) = self.socks.file(slot) {
            self.ring.unregister_file(i);
        }
        if let Some(tag) = self.socks.close(slot) {
            // The ring holds its own reference to the file: cancel the receive so the port is
            // really released. If even the cancel cannot be queued, the receive ends when the
            // ring does; the tag going stale already makes its completions miss.
            let _ = self.ring.cancel(ud(OP_RECV, tag), ud(OP_CANCEL, 0));
        }
    }

    /// Queues a send of `len` bytes of buffer `bid` from `off` on `key`'s socket `via`; the
    /// buffer goes back at once if there is no such socket or the ring is full. True if queued.
    fn send(
        &mut self,
        key: Key,
        via: Socket,
        bid: u16,
        off: usize,
        len: usize,
        to: SocketAddr,
    ) -> bool {
        let Some(file) = self.socket_file(key, via) else {
            self.local.drops.add(DropReason::NoDestination);
            self.ring.recycle(bid);
            return false;
        };
        let queued = self
            .ring
            .send(file, bid, off, len, to, ud(OP_SEND, u64::from(bid)));
        if !queued {
            self.local.send_errors += 1;
        }
        queued
    }

    fn run(&mut self) {
        let mut now;
        while !self.shutdown {
            #[allow(
                clippy::disallowed_methods,
                reason = "the reactor loop's one clock read per iteration"
            )]
            {
                now = Instant::now();
            }
            self.cqes.clear();
            self.ring.completions(&mut self.cqes);
            self.local.wakeups += 1;
            self.local.completions += self.cqes.len() as u64;
            for i in 0..self.cqes.len() {
                let (user_data, res, flags) = self.cqes[i];
                self.complete(now, user_data, res, flags);
            }
            if std::mem::take(&mut self.wake_lost) {
                self.drain_commands(now);
                self.arm_wake();
            }
            for slot in std::mem::take(&mut self.rearm) {
                self.local.rearms += 1;
                self.arm_recv(slot);
            }
            self.run_timers(now);
            self.ring.publish();
            self.record_residence();
            self.init.stats.flush(&mut self.local);
            if self.outputs_pending {
                self.outputs_pending = false;
                write_eventfd(self.init.notify.as_raw_fd());
            }
            if self.shutdown {
                // Shutdown came in this iteration (its wake read completed): stop now, not after
                // one more wait of up to IDLE_WAIT with nothing left to wake the ring.
                break;
            }
            let wait = self
                .table
                .next_deadline()
                .map_or(IDLE_WAIT, |t| t.saturating_duration_since(now))
                // Packets and commands wake the ring at once; a timer need not be finer.
                .clamp(MIN_TIMER_WAIT, IDLE_WAIT);
            if let Err(e) = self.ring.submit_and_wait(wait, self.batching) {
                // Nothing sensible is left to do with a broken ring; stop this reactor.
                eprintln!("media reactor stops: io_uring wait failed: {e}");
                break;
            }
        }
        // Release what is left so signaling hears about every session.
        for key in self.table.keys() {
            self.release(key, None);
        }
        self.init.stats.flush(&mut self.local);
        if self.outputs_pending {
            write_eventfd(self.init.notify.as_raw_fd());
        }
    }

    /// Residence of the sends queued this iteration: they are submitted by the wait that
    /// follows, so the clock is read now, once.
    fn record_residence(&mut self) {
        if self.resident.is_empty() {
            return;
        }
        let now = os::realtime_ns();
        for &rx in &self.resident {
            self.local.add_residence(now.saturating_sub(rx));
        }
        self.resident.clear();
    }

    fn complete(&mut self, now: Instant, user_data: u64, res: i32, flags: u32) {
        match user_data >> 56 {
            OP_RECV => self.complete_recv(now, user_data, res, flags),
            OP_SEND => {
                if res < 0 {
                    self.local.send_errors += 1;
                } else {
                    self.local.packets_out += 1;
                    self.local.bytes_out += res as u64;
                }
                self.ring.send_done((user_data & 0xffff) as u16);
            }
            OP_WAKE => {
                self.drain_commands(now);
                if !self.shutdown {
                    self.arm_wake();
                }
            }
            _ => {}
        }
    }

    fn complete_recv(&mut self, now: Instant, user_data: u64, res: i32, flags: u32) {
        let live = self.socks.live(user_data & ((1 << 56) - 1));
        if let Some(slot) = live.filter(|_| !ring::more(flags)) {
            self.rearm.push(slot);
        }
        let bid = ring::buffer_of(flags);
        if res < 0 {
            if -res == libc::ENOBUFS {
                self.local.no_buffers += 1;
            } else if -res != libc::ECANCELED {
                self.local.recv_errors += 1;
            }
            if let Some(bid) = bid {
                self.ring.discard_received(bid);
            }
            return;
        }
        let Some(rx) = bid.and_then(|b| self.ring.take_received(b, res).ok()) else {
            return;
        };
        let Some(slot) = live else {
            self.local.drops.add(DropReason::UnknownSession);
            if let Some(rx) = rx {
                self.ring.recycle(rx.bid);
            }
            return;
        };
        self.local.packets_in += 1;
        let Some(rx) = rx else {
            self.local.drops.add(DropReason::Malformed);
            return;
        };
        self.local.bytes_in += rx.len as u64;
        match rx.src {
            Some(src) if !rx.truncated => self.relay(now, slot, rx, src),
            _ => {
                let reason = if rx.truncated {
                    DropReason::Truncated
                } else {
                    DropReason::Malformed
                };
                self.local.drops.add(reason);
                self.ring.recycle(rx.bid);
            }
        }
    }

    /// A datagram from `src` on socket `slot` to its session, and on where the session says.
    fn relay(&mut self, now: Instant, slot: usize, rx: Received, src: SocketAddr) {
        let Received { bid, off, len, .. } = rx;
        let (key, via) = match self.socks.owner(slot) {
            Owner::Plain { key, via } => (Some(key), via),
            Owner::WebRtc => {
                let data = &self.ring.buf(bid)[off..off + len];
                let key = if demux(data) == PacketKind::Stun {
                    local_ufrag_of(data).and_then(|u| self.table.by_ufrag(u))
                } else {
                    self.table.by_addr(&src)
                };
                (key, Socket::WebRtc)
            }
        };
        let Some((key, entry)) = key.and_then(|k| Some((k, self.table.get_mut(k)?))) else {
            self.local.drops.add(DropReason::UnknownSession);
            self.ring.recycle(bid);
            return;
        };
        let session = &mut entry.session;
        let buf = self.ring.buf(bid);
        let verdict = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(any(test, feature = "test-hooks"))]
            if buf[off..off + len] == *crate::TEST_PANIC_PAYLOAD {
                panic!("a session bug, simulated by a test");
            }
            session.handle_datagram(now, via, src, &mut buf[off..], len)
        }));
        match verdict {
            Ok(Verdict::Forward { via, to, len }) => {
                let queued = self.send(key, via, bid, off, len, to);
                // Bounded by the buffers in flight, so it never grows past its capacity.
                if let Some(t) = rx.stamp.filter(|_| queued) {
                    if self.resident.len() < self.resident.capacity() {
                        self.resident.push(t);
                    }
                }
            }
            Ok(Verdict::Consumed) => self.ring.recycle(bid),
            Ok(Verdict::Drop(reason)) => {
                self.local.drops.add(reason);
                self.ring.recycle(bid);
            }
            Err(_) => {
                self.ring.recycle(bid);
                self.local.drops.add(DropReason::Panicked);
                self.panicked(key);
                return;
            }
        }
        self.after_session(key);
    }

    fn socket_file(&self, key: Key, via: Socket) -> Option<File> {
        let slot = match via {
            Socket::WebRtc => 0,
            Socket::Rtp(l, s) => self.table.get(key)?.plain[leg_idx(l)][stream_idx(s)]?.0,
            Socket::Rtcp(l, s) => self.table.get(key)?.plain[leg_idx(l)][stream_idx(s)]?.1,
        };
        self.socks.file(slot)
    }

    fn emit(&mut self, out: Output) {
        let _ = self.init.outputs.send(out);
        self.outputs_pending = true;
    }

    /// Collects what a session has to say after any input: transmits, routes, events, timer.
    fn after_session(&mut self, key: Key) {
        let result = catch_unwind(AssertUnwindSafe(|| self.drain_session(key)));
        if result.is_err() {
            self.panicked(key);
        }
    }

    fn drain_session(&mut self, key: Key) {
        // Transmits (DTLS flights) into transmit buffers.
        while let Some(bid) = self.ring.take_tx() {
            let Some(entry) = self.table.get_mut(key) else {
                self.ring.recycle(bid);
                return;
            };
            let Some(t) = entry.session.poll_transmit(self.ring.buf(bid)) else {
                self.ring.recycle(bid);
                break;
            };
            let _ = self.send(key, t.via, bid, 0, t.len, t.to);
        }
        let Some(entry) = self.table.get_mut(key) else {
            return;
        };
        let routes_changed = entry.session.poll_routes_changed();
        let mut events = Vec::new();
        while let Some(e) = entry.session.poll_event() {
            events.push(e);
        }
        let deadline = entry.session.poll_timeout();
        if routes_changed {
            self.table.sync_routes(key);
        }
        self.table.arm(key, deadline);
        for e in events {
            if let Event::DtlsFailed { id, leg, reason } = &e {
                // At most once per leg and session: the reason is otherwise lost to signaling's
                // log, which names only the event.
                eprintln!("media session {}: leg {leg:?}: DTLS failed: {reason}", id.0);
            }
            self.emit(Output::Event(e));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.due);
        self.table.take_due(now, &mut due);
        for key in due.drain(..) {
            let Some(entry) = self.table.get_mut(key) else {
                continue;
            };
            let session = &mut entry.session;
            if catch_unwind(AssertUnwindSafe(|| session.handle_timeout(now))).is_err() {
                self.panicked(key);
                continue;
            }
            self.after_session(key);
        }
        self.due = due;
    }

    fn panicked(&mut self, key: Key) {
        self.local.panics += 1;
        let stats = self.table.get(key).and_then(|e| {
            let s = &e.session;
            catch_unwind(AssertUnwindSafe(|| s.stats())).ok()
        });
        self.release(key, Some(stats.unwrap_or_default()));
    }

    fn drain_commands(&mut self, now: Instant) {
        for _ in 0..COMMAND_BUDGET {
            match self.init.commands.try_recv() {
                Ok(Msg::Command(cmd)) => self.command(now, *cmd),
                Ok(Msg::Shutdown) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.shutdown = true;
                    return;
                }
                Err(crossbeam_channel::TryRecvError::Empty) => return,
            }
        }
        // More waiting: wake ourselves again so media gets a turn first.
        write_eventfd(self.init.wake.as_raw_fd());
    }
    fn command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Allocate { id, legs, video } => {
                let reply = self.allocate(now, id, &legs, video);
                let key = matches!(reply, Reply::Allocated { .. })
                    .then(|| self.table.key_of(id))
                    .flatten();
                // The reply first, then whatever the new session has to say.
                self.emit(Output::Reply(reply));
                if let Some(key) = key {
                    self.after_session(key);
                }
            }
            Command::Update { id, leg, remote } => {
                let Some(key) = self.table.key_of(id) else {
                    return self.emit(Output::Reply(Reply::Failed {
                        id,
                        failure: Failure::UnknownSession,
                    }));
                };
                let entry = self.table.get_mut(key).expect("key_of gives live keys");
                let session = &mut entry.session;
                let entropy = &mut self.entropy;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    session.update(now, leg, &remote, entropy)
                }));
                match result {
                    Ok(Ok(local)) => {
                        self.table.sync_ufrags(key);
                        self.emit(Output::Reply(Reply::Updated { id, leg, local }));
                        self.after_session(key);
                    }
                    Ok(Err(failure)) => self.emit(Output::Reply(Reply::Failed { id, failure })),
                    Err(_) => {
                        self.emit(Output::Reply(Reply::Failed {
                            id,
                            failure: Failure::BadRequest("the session failed".into()),
                        }));
                        self.panicked(key);
                    }
                }
            }
            Command::Release { id } => match self.table.key_of(id) {
                Some(key) => {
                    let stats = self.table.get(key).map(|e| e.session.stats());
                    self.release(key, stats);
                }
                None => self.emit(Output::Reply(Reply::Failed {
                    id,
                    failure: Failure::UnknownSession,
                })),
            },
            Command::Query { id } => {
                let reply = match self.table.key_of(id).and_then(|k| self.table.get(k)) {
                    Some(e) => Reply::Stats {
                        id,
                        stats: e.session.stats(),
                    },
                    None => Reply::Failed {
                        id,
                        failure: Failure::UnknownSession,
                    },
                };
                self.emit(Output::Reply(reply));
            }
        }
    }

    /// Binds an RTP/RTCP pair from the shard, skipping busy ports.
    fn bind_pair(&mut self) -> Option<BoundPair> {
        for _ in 0..self.free_pairs.len() {
            let base = self.free_pairs.pop_front()?;
            #[allow(
                clippy::disallowed_methods,
                reason = "the reactor is the engine's IO edge: it binds its plain legs' ports"
            )]
            let (rtp, rtcp) = (
                UdpSocket::bind(SocketAddr::new(self.init.bind, base)),
                UdpSocket::bind(SocketAddr::new(self.init.bind, base + 1)),
            );
            match (rtp, rtcp) {
                (Ok(a), Ok(b)) => return Some((base, a, b)),
                // Busy (another process, or a socket of ours the ring still holds): try later.
                _ => self.free_pairs.push_back(base),
            }
        }
        None
    }

    /// Gives bound pairs back to the shard (their sockets close as they drop).
    fn unbind(&mut self, bound: [[Option<BoundPair>; 2]; 2]) {
        for (base, _, _) in bound.into_iter().flatten().flatten() {
            self.free_pairs.push_back(base);
        }
    }

    fn allocate(&mut self, now: Instant, id: SessionId, legs: &[LegSpec; 2], video: bool) -> Reply {
        if self.table.key_of(id).is_some() {
            return Reply::Failed {
                id,
                failure: Failure::BadRequest("session id already allocated".into()),
            };
        }
        // Per leg and stream (in `STREAMS` order): the audio pair, and the video pair when asked
        // for.
        let mut bound: [[Option<BoundPair>; 2]; 2] = Default::default();
        let streams = if video { 2 } else { 1 };
        for (i, spec) in legs.iter().enumerate() {
            if !matches!(spec, LegSpec::Plain(_)) {
                continue;
            }
            for s in 0..streams {
                match self.bind_pair() {
                    Some(p) => bound[i][s] = Some(p),
                    None => {
                        self.unbind(bound);
                        return Reply::Failed {
                            id,
                            failure: Failure::PortsExhausted,
                        };
                    }
                }
            }
        }
        let webrtc_addr = SocketAddr::new(self.init.advertise, self.init.shard.webrtc_port);
        let advertise = self.init.advertise;
        let rtp_addr = |p: &Option<BoundPair>| {
            p.as_ref()
                .map(|(base, _, _)| SocketAddr::new(advertise, *base))
        };
        let local = [0, 1].map(|i| match &legs[i] {
            LegSpec::WebRtc(_) => LocalAddrs::at(webrtc_addr),
            LegSpec::Plain(_) => LocalAddrs {
                media: rtp_addr(&bound[i][0]),
                video: rtp_addr(&bound[i][1]),
            },
            LegSpec::Echo => LocalAddrs::NONE,
        });
        let session = match Session::new(
            id,
            legs,
            local,
            self.init.identity.clone(),
            self.init.config.clone(),
            now,
            &mut self.entropy,
        ) {
            Ok(s) => s,
            Err(failure) => {
                self.unbind(bound);
                return Reply::Failed { id, failure };
            }
        };
        let key = self.table.next_key();
        let mut plain = [[None; 2]; 2];
        let mut pairs = Vec::new();
        for (i, leg_pairs) in bound.into_iter().enumerate() {
            let leg = if i == 0 { LegIndex::A } else { LegIndex::B };
            for (s, pair) in leg_pairs.into_iter().enumerate() {
                let Some((base, rtp, rtcp)) = pair else {
                    continue;
                };
                let stream = STREAMS[s];
                let r = self.add_socket(
                    rtp,
                    Owner::Plain {
                        key,
                        via: Socket::Rtp(leg, stream),
                    },
                );
                let c = self.add_socket(
                    rtcp,
                    Owner::Plain {
                        key,
                        via: Socket::Rtcp(leg, stream),
                    },
                );
                self.arm_recv(r);
                self.arm_recv(c);
                plain[i][s] = Some((r, c));
                pairs.push(base);
            }
        }
        let legs = [
            session.local_leg(LegIndex::A),
            session.local_leg(LegIndex::B),
        ];
        let inserted = self.table.insert(id, session, plain, pairs);
        debug_assert_eq!(inserted, Some(key), "no other change since next_key");
        self.init.stats.sessions.fetch_add(1, Ordering::Relaxed);
        Reply::Allocated { id, legs }
    }

    /// Tears a session down: sockets closed, routes removed, ports back to the shard, and
    /// `Event::Released` with `stats` (none for a session already gone).
    fn release(&mut self, key: Key, stats: Option<crate::api::SessionStats>) {
        let Some((id, entry)) = self.table.remove(key) else {
            return;
        };
        for (r, c) in entry.plain.iter().flatten().flatten() {
            self.close_socket(*r);
            self.close_socket(*c);
        }
        // To the back: the ring may hold the old sockets until the cancel completes.
        self.free_pairs.extend(entry.pairs.iter().copied());
        self.init.stats.sessions.fetch_sub(1, Ordering::Relaxed);
        // Dropping the session frees its DTLS and SRTP state here, on its own thread.
        drop(entry);
        self.emit(Output::Event(Event::Released {
            id,
            stats: stats.unwrap_or_default(),
        }));
    }
}

fn leg_idx(l: LegIndex) -> usize {
    match l {
        LegIndex::A => 0,
        LegIndex::B => 1,
    }
}

/// A plain leg's streams, in the order of [`Entry::plain`]'s inner arrays.
const STREAMS: [Stream; 2] = [Stream::Audio, Stream::Video];

fn stream_idx(s: Stream) -> usize {
    match s {
        Stream::Audio => 0,
        Stream::Video => 1,
    }
}

#[cfg(test)]
mod tests;
