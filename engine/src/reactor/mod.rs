//! The media reactors: the only IO of the engine. One thread per port shard, pinned when there
//! are cores to spare, owning its sessions outright, so no lock guards a session and a packet can
//! never reach a released one (the table lookup fails, the packet is dropped and counted).
//!
//! Per reactor: one io_uring (`SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN`), one provided
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
//!     budget once the first arrives (io_uring min-wait)
//! }
//! ```
//!
//! Batching: with a budget B (`MEDIA_BATCH_US`), the wait asks the kernel for many completions
//! with `min_wait_usec = B` (`IORING_FEAT_MIN_TIMEOUT`, kernel 6.12+): the reactor wakes when
//! [`BATCH_WANT`] completions are in, or B after it went to sleep if at least one is, or, when B
//! passed with nothing, at the first completion after that. So a busy reactor takes dozens of
//! completions per wake-up, no completion waits longer than B for the wake-up, and a quiet
//! reactor sleeps and wakes for its next packet at once. Kernels without min-wait get a bounded
//! linger instead (a wait of at most B for the batch, then an ordinary wait for one).
//!
//! Residence: every socket has `SO_TIMESTAMPNS`, so each received datagram carries the
//! kernel's receive time (`CLOCK_REALTIME`) in the multishot recvmsg's control data. A forwarded
//! packet's residence is that stamp to the moment its send is submitted (the clock is read once
//! per loop iteration, just before the submit), kept in a fixed-bucket histogram per reactor.

mod ring;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::api::{Command, Event, Failure, LegIndex, LegSpec, Output, Reply, SessionId};
use crate::ports::Shard;
use crate::proto::dtls::DtlsIdentity;
use crate::proto::ice::local_ufrag_of;
use crate::proto::session::{
    LocalAddrs, Session, SessionConfig, Socket, Stream, Verdict, MAX_ROUTES,
};
use crate::proto::stats::{DropCounts, DropReason};
use crate::proto::wire::{demux, PacketKind};
use ring::{read_sockaddr, Buffers, BUF_SIZE};

/// Ring buffers per reactor (measured-limits §1 used 1024 x 2 KiB).
const RING_BUFFERS: u16 = 1024;
/// Transmit buffers for datagrams the sessions originate.
const TX_BUFFERS: u16 = 64;
/// The buffer group id of the provided ring.
const BGID: u16 = 0;
/// Submission queue size.
const SQ_ENTRIES: u32 = 1024;
/// Longest wait when no timer is armed (commands and packets wake the ring anyway).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Shortest timer wait: a re-armed timer that is already due (OpenSSL's DTLS timer runs on the
/// wall clock and may lag ours by a few ms) must not spin the loop.
const MIN_TIMER_WAIT: Duration = Duration::from_millis(1);
/// Commands handled per loop iteration, so a burst of allocations cannot starve media.
const COMMAND_BUDGET: usize = 64;
/// Completions a batched wait asks for: the reactor wakes early once this many are in.
pub(crate) const BATCH_WANT: usize = 128;

/// Upper bounds (µs) of the residence-time histogram's buckets; one more bucket takes the rest.
pub const RESIDENCE_BOUNDS_US: [u64; 24] = [
    2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000,
    7_500, 10_000, 20_000, 50_000, 100_000,
];
/// Buckets of the residence histogram (the bounds above and +Inf).
pub const RESIDENCE_BUCKETS: usize = RESIDENCE_BOUNDS_US.len() + 1;

/// The bucket of a residence of `ns` nanoseconds.
fn residence_bucket(ns: u64) -> usize {
    let us = ns / 1_000;
    RESIDENCE_BOUNDS_US.partition_point(|&b| b < us)
}

/// How a reactor waits for completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// One completion wakes the reactor (`MEDIA_BATCH_US=0`).
    Off,
    /// io_uring min-wait (`IORING_ENTER_EXT_ARG` with `min_wait_usec`) of this many µs.
    MinWait(u32),
    /// The kernel has no min-wait: wait up to this many µs for a batch, then for one.
    Linger(u32),
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Batching::Off => write!(f, "off (one completion per wake-up)"),
            Batching::MinWait(us) => write!(f, "io_uring min-wait, {us} us budget"),
            Batching::Linger(us) => write!(
                f,
                "bounded linger, {us} us budget (the kernel refused io_uring min-wait)"
            ),
        }
    }
}

/// What batching a budget of `us` gets on this kernel (probed with a throwaway ring).
pub(crate) fn probe_batching(us: u32) -> Batching {
    if us == 0 {
        return Batching::Off;
    }
    match IoUring::new(2) {
        Ok(r) if r.params().is_feature_min_timeout() => Batching::MinWait(us),
        _ => Batching::Linger(us),
    }
}

/// The name length reserved in each received buffer: room for a `sockaddr_in6`.
const NAME_LEN: u32 = size_of::<libc::sockaddr_in6>() as u32;
/// Control bytes reserved in each received buffer: one `SCM_TIMESTAMPNS` message
/// (`CMSG_SPACE(sizeof(struct timespec))`).
const CONTROL_LEN: usize = size_of::<libc::cmsghdr>() + size_of::<libc::timespec>();

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

/// Counters of one reactor, updated once per loop iteration; read for metrics.
#[derive(Debug, Default)]
pub struct ReactorStats {
    sessions: AtomicU64,
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    recv_errors: AtomicU64,
    no_buffers: AtomicU64,
    rearms: AtomicU64,
    panics: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    wakeups: AtomicU64,
    completions: AtomicU64,
    residence: [AtomicU64; RESIDENCE_BUCKETS],
    residence_sum_ns: AtomicU64,
    residence_max_ns: AtomicU64,
}

/// A copy of one reactor's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReactorSnapshot {
    /// Live sessions.
    pub sessions: u64,
    /// Datagrams received, and their bytes.
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Datagrams sent (forwarded, answered, originated), and their bytes.
    pub packets_out: u64,
    pub bytes_out: u64,
    /// Sends the kernel refused.
    pub send_errors: u64,
    /// Receive completions with an error other than "no buffer".
    pub recv_errors: u64,
    /// Receives that found the buffer ring empty (`ENOBUFS`).
    pub no_buffers: u64,
    /// Multishot receives re-armed after they ended.
    pub rearms: u64,
    /// Sessions torn down because they panicked.
    pub panics: u64,
    /// Datagrams dropped, by reason.
    pub drops: DropCounts,
    /// Returns from the wait (each one a wake-up of the reactor thread, or a timer).
    pub wakeups: u64,
    /// Completions handled (receives, sends, wake reads, cancels).
    pub completions: u64,
    /// Forwarded packets by residence time (kernel receive stamp to send submission), in the
    /// buckets of [`RESIDENCE_BOUNDS_US`] and a last one for the rest.
    pub residence: [u64; RESIDENCE_BUCKETS],
    /// Sum of those residence times, ns.
    pub residence_sum_ns: u64,
    /// The longest residence seen, ns.
    pub residence_max_ns: u64,
}

impl ReactorSnapshot {
    /// Forwarded packets with a residence time.
    pub fn residence_count(&self) -> u64 {
        self.residence.iter().sum()
    }
}

impl ReactorStats {
    /// The current values.
    pub fn snapshot(&self) -> ReactorSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut drops = DropCounts::default();
        for r in DropReason::ALL {
            drops.add_n(r, l(&self.drops[r as usize]));
        }
        ReactorSnapshot {
            sessions: l(&self.sessions),
            packets_in: l(&self.packets_in),
            bytes_in: l(&self.bytes_in),
            packets_out: l(&self.packets_out),
            bytes_out: l(&self.bytes_out),
            send_errors: l(&self.send_errors),
            recv_errors: l(&self.recv_errors),
            no_buffers: l(&self.no_buffers),
            rearms: l(&self.rearms),
            panics: l(&self.panics),
            drops,
            wakeups: l(&self.wakeups),
            completions: l(&self.completions),
            residence: std::array::from_fn(|i| l(&self.residence[i])),
            residence_sum_ns: l(&self.residence_sum_ns),
            residence_max_ns: l(&self.residence_max_ns),
        }
    }

    fn flush(&self, local: &mut ReactorSnapshot) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&self.packets_in, &mut local.packets_in);
        add(&self.bytes_in, &mut local.bytes_in);
        add(&self.packets_out, &mut local.packets_out);
        add(&self.bytes_out, &mut local.bytes_out);
        add(&self.send_errors, &mut local.send_errors);
        add(&self.recv_errors, &mut local.recv_errors);
        add(&self.no_buffers, &mut local.no_buffers);
        add(&self.rearms, &mut local.rearms);
        add(&self.panics, &mut local.panics);
        add(&self.wakeups, &mut local.wakeups);
        add(&self.completions, &mut local.completions);
        if local.residence_sum_ns != 0 || local.residence_count() != 0 {
            for (a, v) in self.residence.iter().zip(local.residence.iter_mut()) {
                add(a, v);
            }
            add(&self.residence_sum_ns, &mut local.residence_sum_ns);
        }
        if local.residence_max_ns != 0 {
            self.residence_max_ns
                .fetch_max(local.residence_max_ns, Ordering::Relaxed);
            local.residence_max_ns = 0;
        }
        if local.drops.total() != 0 {
            for r in DropReason::ALL {
                let n = local.drops.get(r);
                if n != 0 {
                    self.drops[r as usize].fetch_add(n, Ordering::Relaxed);
                }
            }
            local.drops = DropCounts::default();
        }
    }
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
    pub(crate) batching: Batching,
}

/// A session's place in the table; the generation makes stale keys miss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    idx: u32,
    gen: u32,
}

/// Who a socket's datagrams belong to.
#[derive(Debug, Clone, Copy)]
enum Owner {
    WebRtc,
    Plain { key: Key, via: Socket },
}

struct SockSlot {
    gen: u16,
    sock: Option<UdpSocket>,
    owner: Owner,
}

/// An RTP/RTCP pair bound from the shard: the even port, and its two sockets.
type BoundPair = (u16, UdpSocket, UdpSocket);

struct Entry {
    session: Session,
    /// Socket slots of plain legs: (RTP, RTCP) per leg and stream (audio, video).
    plain: [[Option<(usize, usize)>; 2]; 2],
    /// The shard's pairs this session holds (both streams of both legs).
    pairs: Vec<u16>,
    /// The addresses routed to this session on the WebRTC port: its session's
    /// [`Session::routes`] when last asked (at most [`MAX_ROUTES`]).
    routes: Vec<SocketAddr>,
    ufrags: Vec<Box<[u8]>>,
    deadline: Option<Instant>,
}

struct SessionSlot {
    gen: u32,
    entry: Option<Entry>,
}

/// One reactor's state; lives on its thread.
struct Reactor {
    ring: IoUring,
    bufs: Buffers,
    msghdr: Box<libc::msghdr>,
    wake_buf: Box<[u8; 8]>,
    init: ReactorInit,
    socks: Vec<SockSlot>,
    free_socks: Vec<usize>,
    slots: Vec<SessionSlot>,
    free_slots: Vec<u32>,
    by_id: HashMap<SessionId, Key>,
    by_addr: HashMap<SocketAddr, Key>,
    by_ufrag: HashMap<Box<[u8]>, Key>,
    timers: BTreeSet<(Instant, Key)>,
    free_pairs: VecDeque<u16>,
    rearm: Vec<usize>,
    wake_lost: bool,
    due: Vec<Key>,
    cqes: Vec<(u64, i32, u32)>,
    /// Kernel receive stamps (ns since the epoch) of the sends queued this iteration.
    resident: Vec<u64>,
    batching: Batching,
    local: ReactorSnapshot,
    outputs_pending: bool,
    shutdown: bool,
}

/// Runs a reactor until shutdown; `ready` hears whether start-up worked.
pub(crate) fn run(init: ReactorInit, ready: Sender<io::Result<()>>) {
    let mut reactor = match Reactor::new(init) {
        Ok(r) => {
            let _ = ready.send(Ok(()));
            r
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    reactor.run();
}

/// Waits for completions (submitting what is queued) for at most `timeout`, batched as
/// `batching` says. Returns the batching to use from now on (min-wait falls back to a linger if
/// the kernel refuses it).
fn submit_and_wait(
    ring: &mut IoUring,
    timeout: Duration,
    batching: Batching,
) -> io::Result<Batching> {
    let ts_of = |d: Duration| {
        types::Timespec::new()
            .sec(d.as_secs())
            .nsec(d.subsec_nanos())
    };
    let benign = |e: &io::Error| {
        matches!(
            e.raw_os_error(),
            Some(libc::ETIME | libc::EINTR | libc::EBUSY)
        )
    };
    let wait = |ring: &IoUring, want: usize, args: &types::SubmitArgs<'_, '_>| match ring
        .submitter()
        .submit_with_args(want, args)
    {
        Ok(_) => Ok(()),
        Err(e) if benign(&e) => Ok(()),
        Err(e) => Err(e),
    };
    match batching {
        Batching::Off => {
            let ts = ts_of(timeout);
            wait(ring, 1, &types::SubmitArgs::new().timespec(&ts))?;
        }
        Batching::MinWait(us) => {
            let ts = ts_of(timeout);
            let args = types::SubmitArgs::new().timespec(&ts).min_wait_usec(us);
            match ring.submitter().submit_with_args(BATCH_WANT, &args) {
                Ok(_) => {}
                Err(e) if benign(&e) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    eprintln!(
                        "media reactor: io_uring refused min-wait ({e}); batching falls back to a bounded linger of {us} us"
                    );
                    return Ok(Batching::Linger(us));
                }
                Err(e) => return Err(e),
            }
        }
        Batching::Linger(us) => {
            let budget = Duration::from_micros(u64::from(us)).min(timeout);
            let ts = ts_of(budget);
            wait(ring, BATCH_WANT, &types::SubmitArgs::new().timespec(&ts))?;
            if ring.completion().is_empty() && timeout > budget {
                let ts = ts_of(timeout - budget);
                wait(ring, 1, &types::SubmitArgs::new().timespec(&ts))?;
            }
        }
    }
    Ok(batching)
}

/// `CLOCK_REALTIME` in ns since the epoch: the clock of the kernel's receive stamps.
fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// The `SCM_TIMESTAMPNS` stamp (ns since the epoch) in a recvmsg's control data, if any.
fn rx_stamp(control: &[u8]) -> Option<u64> {
    let hdr = size_of::<libc::cmsghdr>();
    let mut off = 0;
    while control.len() >= off + hdr {
        let len = usize::from_ne_bytes(control[off..off + 8].try_into().ok()?);
        let level = i32::from_ne_bytes(control[off + 8..off + 12].try_into().ok()?);
        let kind = i32::from_ne_bytes(control[off + 12..off + 16].try_into().ok()?);
        if len < hdr || off + len > control.len() {
            return None;
        }
        if level == libc::SOL_SOCKET && kind == libc::SO_TIMESTAMPNS && len >= hdr + 16 {
            let d = &control[off + hdr..off + hdr + 16];
            let sec = i64::from_ne_bytes(d[..8].try_into().ok()?);
            let nsec = i64::from_ne_bytes(d[8..].try_into().ok()?);
            return Some((sec as u64).wrapping_mul(1_000_000_000) + nsec as u64);
        }
        // CMSG_ALIGN to 8 bytes.
        off += (len + 7) & !7;
    }
    None
}

/// Asks the kernel to stamp every datagram `sock` receives (`SO_TIMESTAMPNS`); without it
/// residence is not measured for that socket, nothing else changes.
fn enable_rx_stamps(sock: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: `sock` is an open socket; the option value is a c_int that outlives the call.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

impl Reactor {
    fn new(init: ReactorInit) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(SQ_ENTRIES)?;
        let mut bufs = Buffers::new(RING_BUFFERS, TX_BUFFERS)?;
        // SAFETY: the ring memory is a page-aligned mapping of RING_BUFFERS entries owned by
        // `bufs`, which the reactor keeps alive as long as the io_uring (fields drop in order:
        // `ring` is declared before `bufs`).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.ring_addr(),
                bufs.entries(),
                BGID,
                0,
            )?;
        }
        bufs.fill_ring();
        // SAFETY: msghdr is plain data; all zero is "no name, no control, no iovec".
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = NAME_LEN;
        // For multishot receives only the length counts: the kernel reserves this much control
        // space in each provided buffer.
        msghdr.msg_controllen = CONTROL_LEN as _;
        let free_pairs = init.shard.pair_bases.iter().copied().collect();
        let mut r = Self {
            ring,
            bufs,
            msghdr,
            wake_buf: Box::new([0; 8]),
            socks: Vec::new(),
            free_socks: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            timers: BTreeSet::new(),
            free_pairs,
            rearm: Vec::new(),
            wake_lost: false,
            due: Vec::new(),
            cqes: Vec::with_capacity(SQ_ENTRIES as usize * 2),
            resident: Vec::with_capacity(usize::from(RING_BUFFERS) + usize::from(TX_BUFFERS)),
            batching: init.batching,
            local: ReactorSnapshot::default(),
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

    /// Queues an SQE; false if the ring would not take it even after a submit (the caller
    /// then still owns what the SQE pointed at).
    #[must_use]
    fn push(&mut self, sqe: squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: every SQE the reactor builds points at memory the reactor owns and keeps
            // until the completion: the msghdr (boxed, lives as long as the reactor), the wake
            // buffer (boxed), and buffers/addresses of `bufs` owned until their send completes.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return true;
            }
            // The queue is full: hand it to the kernel and retry.
            let _ = self.ring.submit();
        }
        false
    }

    /// Queues a send of buffer `bid`; on failure the buffer goes back at once (false).
    fn push_send(&mut self, sqe: squeue::Entry, bid: u16) -> bool {
        if !self.push(sqe) {
            self.local.send_errors += 1;
            self.bufs.recycle(bid);
            return false;
        }
        true
    }

    fn add_socket(&mut self, sock: UdpSocket, owner: Owner) -> usize {
        enable_rx_stamps(&sock);
        if matches!(owner, Owner::WebRtc) {
            // Every browser of this reactor sends to this one socket: at 25,000 packets a
            // second the kernel's default 208 KiB holds only tens of milliseconds, and the load
            // generator saw receive-buffer drops at 500 calls. Plain legs keep the default.
            set_socket_buffers(&sock, WEBRTC_SOCKET_BUFFER);
        }
        match self.free_socks.pop() {
            Some(i) => {
                let s = &mut self.socks[i];
                s.sock = Some(sock);
                s.owner = owner;
                i
            }
            None => {
                self.socks.push(SockSlot {
                    gen: 0,
                    sock: Some(sock),
                    owner,
                });
                self.socks.len() - 1
            }
        }
    }

    fn recv_ud(&self, slot: usize) -> u64 {
        ud(
            OP_RECV,
            (u64::from(self.socks[slot].gen) << 32) | slot as u64,
        )
    }

    fn arm_recv(&mut self, slot: usize) {
        let Some(fd) = self.socks[slot].sock.as_ref().map(|s| s.as_raw_fd()) else {
            return;
        };
        let sqe = opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr, BGID)
            .build()
            .user_data(self.recv_ud(slot));
        if !self.push(sqe) {
            // Try again on the next iteration rather than lose the socket.
            self.rearm.push(slot);
        }
    }

    fn arm_wake(&mut self) {
        let fd = self.init.wake.as_raw_fd();
        let sqe = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(ud(OP_WAKE, 0));
        if !self.push(sqe) {
            // Without the wake read commands would stall: poll them from the loop instead.
            self.wake_lost = true;
        }
    }

    fn close_socket(&mut self, slot: usize) {
        let user_data = self.recv_ud(slot);
        let s = &mut self.socks[slot];
        if s.sock.take().is_some() {
            s.gen = s.gen.wrapping_add(1);
            // The ring holds its own reference to the file: cancel the receive so the port is
            // really released.
            let sqe = opcode::AsyncCancel::new(user_data)
                .build()
                .user_data(ud(OP_CANCEL, 0));
            // If even the cancel cannot be queued, the receive ends when the ring does; the
            // generation bump already makes its completions miss.
            let _ = self.push(sqe);
            self.free_socks.push(slot);
        }
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
            for cqe in self.ring.completion() {
                self.cqes.push((cqe.user_data(), cqe.result(), cqe.flags()));
            }
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
            self.bufs.publish();
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
                .timers
                .first()
                .map_or(IDLE_WAIT, |(t, _)| t.saturating_duration_since(now))
                // Packets and commands wake the ring at once; a timer need not be finer.
                .clamp(MIN_TIMER_WAIT, IDLE_WAIT);
            match submit_and_wait(&mut self.ring, wait, self.batching) {
                Ok(b) => self.batching = b,
                Err(e) => {
                    // Nothing sensible is left to do with a broken ring; stop this reactor.
                    eprintln!("media reactor stops: io_uring wait failed: {e}");
                    break;
                }
            }
        }
        // Release what is left so signaling hears about every session.
        let keys: Vec<Key> = self.by_id.values().copied().collect();
        for key in keys {
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
        let now = realtime_ns();
        for &rx in &self.resident {
            let ns = now.saturating_sub(rx);
            self.local.residence[residence_bucket(ns)] += 1;
            self.local.residence_sum_ns += ns;
            self.local.residence_max_ns = self.local.residence_max_ns.max(ns);
        }
        self.resident.clear();
    }

    fn complete(&mut self, now: Instant, user_data: u64, res: i32, flags: u32) {
        match user_data >> 56 {
            OP_RECV => self.complete_recv(now, user_data, res, flags),
            OP_SEND => {
                let bid = (user_data & 0xffff) as u16;
                if res < 0 {
                    self.local.send_errors += 1;
                } else {
                    self.local.packets_out += 1;
                    self.local.bytes_out += res as u64;
                }
                self.bufs.recycle(bid);
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
        let slot = (user_data & 0xffff_ffff) as usize;
        let gen = ((user_data >> 32) & 0xffff) as u16;
        let live = self
            .socks
            .get(slot)
            .is_some_and(|s| s.gen == gen && s.sock.is_some());
        if live && !cqueue::more(flags) {
            self.rearm.push(slot);
        }
        let bid = cqueue::buffer_select(flags);
        if res < 0 {
            if -res == libc::ENOBUFS {
                self.local.no_buffers += 1;
            } else if -res != libc::ECANCELED {
                self.local.recv_errors += 1;
            }
            if let Some(bid) = bid {
                self.bufs.recycle(bid);
            }
            return;
        }
        let Some(bid) = bid.filter(|&b| self.bufs.is_valid(b)) else {
            return;
        };
        if !live {
            self.local.drops.add(DropReason::UnknownSession);
            self.bufs.recycle(bid);
            return;
        }
        self.local.packets_in += 1;
        // SAFETY: the kernel handed `bid` over in this completion; it is ours until recycled.
        let buf = unsafe { self.bufs.buf_mut(bid) };
        let Ok(out) = types::RecvMsgOut::parse(&buf[..(res as usize).min(BUF_SIZE)], &self.msghdr)
        else {
            self.local.drops.add(DropReason::Malformed);
            self.bufs.recycle(bid);
            return;
        };
        let truncated = out.is_payload_truncated();
        let stamp = rx_stamp(out.control_data());
        let src = read_sockaddr(out.name_data());
        let payload = out.payload_data();
        let len = payload.len();
        let off = payload.as_ptr() as usize - buf.as_ptr() as usize;
        self.local.bytes_in += len as u64;
        let Some(src) = src.filter(|_| !truncated) else {
            let reason = if truncated {
                DropReason::Truncated
            } else {
                DropReason::Malformed
            };
            self.local.drops.add(reason);
            self.bufs.recycle(bid);
            return;
        };
        let (key, via) = match self.socks[slot].owner {
            Owner::Plain { key, via } => (Some(key), via),
            Owner::WebRtc => {
                let data = &buf[off..off + len];
                let key = if demux(data) == PacketKind::Stun {
                    local_ufrag_of(data).and_then(|u| self.by_ufrag.get(u).copied())
                } else {
                    self.by_addr.get(&src).copied()
                };
                (key, Socket::WebRtc)
            }
        };
        let Some(entry) = key.and_then(|k| slot_entry(&mut self.slots, k)) else {
            self.local.drops.add(DropReason::UnknownSession);
            self.bufs.recycle(bid);
            return;
        };
        let key = key.expect("an entry was found by it");
        let session = &mut entry.session;
        let verdict = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(any(test, feature = "test-hooks"))]
            if buf[off..off + len] == *crate::TEST_PANIC_PAYLOAD {
                panic!("a session bug, simulated by a test");
            }
            session.handle_datagram(now, via, src, &mut buf[off..], len)
        }));
        match verdict {
            Ok(Verdict::Forward { via, to, len }) => match self.socket_fd(key, via) {
                Some(fd) => {
                    let (dest, dest_len) = self.bufs.set_dest(bid, to, self.init.bind.is_ipv6());
                    // SAFETY: as above, `bid` is still ours; the pointer stays valid until the
                    // send completes and the buffer is recycled.
                    let ptr = unsafe { self.bufs.buf_mut(bid) }[off..].as_ptr();
                    let sqe = opcode::Send::new(types::Fd(fd), ptr, len as u32)
                        .dest_addr(dest)
                        .dest_addr_len(dest_len)
                        .build()
                        .user_data(ud(OP_SEND, u64::from(bid)));
                    let queued = self.push_send(sqe, bid);
                    // Bounded by the buffers in flight, so it never grows past its capacity.
                    if let Some(t) = stamp.filter(|_| queued) {
                        if self.resident.len() < self.resident.capacity() {
                            self.resident.push(t);
                        }
                    }
                }
                None => {
                    self.local.drops.add(DropReason::NoDestination);
                    self.bufs.recycle(bid);
                }
            },
            Ok(Verdict::Consumed) => self.bufs.recycle(bid),
            Ok(Verdict::Drop(reason)) => {
                self.local.drops.add(reason);
                self.bufs.recycle(bid);
            }
            Err(_) => {
                self.bufs.recycle(bid);
                self.local.drops.add(DropReason::Panicked);
                self.panicked(key);
                return;
            }
        }
        self.after_session(key);
    }

    fn entry(&self, key: Key) -> Option<&Entry> {
        self.slots
            .get(key.idx as usize)
            .filter(|s| s.gen == key.gen)
            .and_then(|s| s.entry.as_ref())
    }

    fn entry_mut(&mut self, key: Key) -> Option<&mut Entry> {
        slot_entry(&mut self.slots, key)
    }

    fn socket_fd(&self, key: Key, via: Socket) -> Option<RawFd> {
        let slot = match via {
            Socket::WebRtc => 0,
            Socket::Rtp(l, s) => self.entry(key)?.plain[leg_idx(l)][stream_idx(s)]?.0,
            Socket::Rtcp(l, s) => self.entry(key)?.plain[leg_idx(l)][stream_idx(s)]?.1,
        };
        self.socks[slot].sock.as_ref().map(|s| s.as_raw_fd())
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
        while let Some(bid) = self.bufs.take_tx() {
            // SAFETY: `bid` was just taken from the transmit pool.
            let buf = unsafe { self.bufs.buf_mut(bid) };
            let Some(entry) = slot_entry(&mut self.slots, key) else {
                self.bufs.recycle(bid);
                return;
            };
            let Some(t) = entry.session.poll_transmit(buf) else {
                self.bufs.recycle(bid);
                break;
            };
            match self.socket_fd(key, t.via) {
                Some(fd) => {
                    let (dest, dest_len) = self.bufs.set_dest(bid, t.to, self.init.bind.is_ipv6());
                    // SAFETY: `bid` is ours until its send completes.
                    let ptr = unsafe { self.bufs.buf_mut(bid) }.as_ptr();
                    let sqe = opcode::Send::new(types::Fd(fd), ptr, t.len as u32)
                        .dest_addr(dest)
                        .dest_addr_len(dest_len)
                        .build()
                        .user_data(ud(OP_SEND, u64::from(bid)));
                    let _ = self.push_send(sqe, bid);
                }
                None => self.bufs.recycle(bid),
            }
        }
        let Some(entry) = slot_entry(&mut self.slots, key) else {
            return;
        };
        if entry.session.poll_routes_changed() {
            sync_routes(&mut self.by_addr, key, entry);
        }
        let mut events = Vec::new();
        while let Some(e) = entry.session.poll_event() {
            events.push(e);
        }
        // Re-arm only when the session wants to wake earlier than already armed. Media moves
        // the media-timeout deadline later on every packet; the armed (earlier) entry then
        // fires early, finds nothing due, and is re-armed from poll_timeout: no timer-table
        // work per packet.
        let old = entry.deadline;
        let deadline = entry.session.poll_timeout();
        let rearm = match (old, deadline) {
            (_, None) => None,
            (None, Some(t)) => Some(t),
            (Some(o), Some(t)) => (t < o).then_some(t),
        };
        if let Some(t) = rearm {
            entry.deadline = Some(t);
        }
        for e in events {
            if let Event::DtlsFailed { id, leg, reason } = &e {
                // At most once per leg and session: the reason is otherwise lost to signaling's
                // log, which names only the event.
                eprintln!("media session {}: leg {leg:?}: DTLS failed: {reason}", id.0);
            }
            self.emit(Output::Event(e));
        }
        if let Some(t) = rearm {
            if let Some(o) = old {
                self.timers.remove(&(o, key));
            }
            self.timers.insert((t, key));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        // Take the due entries first: a session may re-arm at or before `now` (OpenSSL's timer
        // not quite expired), and that must wait for the next iteration, not spin here.
        let mut due = std::mem::take(&mut self.due);
        while let Some(&(t, key)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            due.push(key);
        }
        for key in due.drain(..) {
            let Some(entry) = self.entry_mut(key) else {
                continue;
            };
            entry.deadline = None;
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
        let stats = self.entry(key).and_then(|e| {
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
                    .then(|| self.by_id.get(&id).copied())
                    .flatten();
                // The reply first, then whatever the new session has to say.
                self.emit(Output::Reply(reply));
                if let Some(key) = key {
                    self.after_session(key);
                }
            }
            Command::Update { id, leg, remote } => {
                let Some(&key) = self.by_id.get(&id) else {
                    return self.emit(Output::Reply(Reply::Failed {
                        id,
                        failure: Failure::UnknownSession,
                    }));
                };
                let entry = self.entry_mut(key).expect("by_id holds live keys");
                let session = &mut entry.session;
                let result = catch_unwind(AssertUnwindSafe(|| session.update(now, leg, &remote)));
                match result {
                    Ok(Ok(local)) => {
                        self.sync_ufrags(key);
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
            Command::Release { id } => match self.by_id.get(&id) {
                Some(&key) => {
                    let stats = self.entry(key).map(|e| e.session.stats());
                    self.release(key, stats);
                }
                None => self.emit(Output::Reply(Reply::Failed {
                    id,
                    failure: Failure::UnknownSession,
                })),
            },
            Command::Query { id } => {
                let reply = match self.by_id.get(&id).and_then(|&k| self.entry(k)) {
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
            let rtp = UdpSocket::bind(SocketAddr::new(self.init.bind, base));
            let rtcp = UdpSocket::bind(SocketAddr::new(self.init.bind, base + 1));
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
        if self.by_id.contains_key(&id) {
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
        ) {
            Ok(s) => s,
            Err(failure) => {
                self.unbind(bound);
                return Reply::Failed { id, failure };
            }
        };
        let idx = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                self.slots.push(SessionSlot {
                    gen: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let key = Key {
            idx,
            gen: self.slots[idx as usize].gen,
        };
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
        self.slots[idx as usize].entry = Some(Entry {
            session,
            plain,
            pairs,
            routes: Vec::new(),
            ufrags: Vec::new(),
            deadline: None,
        });
        self.by_id.insert(id, key);
        self.sync_ufrags(key);
        self.init.stats.sessions.fetch_add(1, Ordering::Relaxed);
        Reply::Allocated { id, legs }
    }

    /// Routes STUN for every ufrag the session answers to.
    fn sync_ufrags(&mut self, key: Key) {
        let Some(entry) = self.entry_mut(key) else {
            return;
        };
        let current: Vec<Box<[u8]>> = entry
            .session
            .ice_ufrags()
            .map(|u| Box::from(u.as_bytes()))
            .collect();
        let mut added = Vec::new();
        for u in current {
            if !entry.ufrags.contains(&u) {
                entry.ufrags.push(u.clone());
                added.push(u);
            }
        }
        for u in added {
            self.by_ufrag.insert(u, key);
        }
    }

    /// Tears a session down: sockets closed, routes removed, ports back to the shard, and
    /// `Event::Released` with `stats` (none for a session already gone).
    fn release(&mut self, key: Key, stats: Option<crate::api::SessionStats>) {
        let Some(slot) = self
            .slots
            .get_mut(key.idx as usize)
            .filter(|s| s.gen == key.gen)
        else {
            return;
        };
        let Some(entry) = slot.entry.take() else {
            return;
        };
        slot.gen = slot.gen.wrapping_add(1);
        self.free_slots.push(key.idx);
        let id = entry.session.id();
        self.by_id.remove(&id);
        for addr in &entry.routes {
            if self.by_addr.get(addr) == Some(&key) {
                self.by_addr.remove(addr);
            }
        }
        for u in &entry.ufrags {
            if self.by_ufrag.get(u) == Some(&key) {
                self.by_ufrag.remove(u);
            }
        }
        if let Some(t) = entry.deadline {
            self.timers.remove(&(t, key));
        }
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

/// Brings the reactor's routes for `key` in step with its session's (ICE's bounded set): routes
/// the session no longer gives are removed (unless another session took the address since),
/// new ones added. `entry.routes` keeps its capacity: no allocation once it has grown.
fn sync_routes(by_addr: &mut HashMap<SocketAddr, Key>, key: Key, entry: &mut Entry) {
    let mut old = [None; MAX_ROUTES];
    for (slot, addr) in old.iter_mut().zip(&entry.routes) {
        *slot = Some(*addr);
    }
    entry.routes.clear();
    for addr in entry.session.routes() {
        if entry.routes.contains(&addr) {
            continue;
        }
        if !old.contains(&Some(addr)) {
            by_addr.insert(addr, key);
        }
        entry.routes.push(addr);
    }
    for addr in old.into_iter().flatten() {
        if !entry.routes.contains(&addr) && by_addr.get(&addr) == Some(&key) {
            by_addr.remove(&addr);
        }
    }
}

fn slot_entry(slots: &mut [SessionSlot], key: Key) -> Option<&mut Entry> {
    slots
        .get_mut(key.idx as usize)
        .filter(|s| s.gen == key.gen)
        .and_then(|s| s.entry.as_mut())
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

/// Adds 1 to an eventfd counter (wakes whoever polls or reads it).
pub(crate) fn write_eventfd(fd: RawFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a local array to an eventfd; a full counter (EAGAIN) only means
    // the reader is already due to wake.
    let _ = unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
}

/// A close-on-exec eventfd; non-blocking for one that signaling polls, blocking for a reactor's
/// wake-up, which only the ring reads (a blocking file makes io_uring wait for the counter
/// instead of completing the read with `EAGAIN`).
/// Kernel buffer size asked for the shared WebRTC socket (the kernel may grant less).
const WEBRTC_SOCKET_BUFFER: i32 = 8 << 20;

/// Sets SO_RCVBUF/SO_SNDBUF, with the FORCE variants first (they pass `rmem_max` when the
/// process may); failures leave the kernel's default, which still works, only with less room.
fn set_socket_buffers(sock: &UdpSocket, bytes: i32) {
    use std::os::fd::AsRawFd;
    let fd = sock.as_raw_fd();
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let set = |opt: libc::c_int| {
            // SAFETY: `fd` is an open socket owned by `sock`; the option value is a c_int that
            // outlives the call, and its size is passed.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    opt,
                    (&bytes as *const i32).cast(),
                    size_of::<i32>() as libc::socklen_t,
                )
            }
        };
        if set(force) != 0 {
            set(plain);
        }
    }
}

pub(crate) fn eventfd(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = if nonblocking {
        libc::EFD_NONBLOCK | libc::EFD_CLOEXEC
    } else {
        libc::EFD_CLOEXEC
    };
    // SAFETY: eventfd has no memory arguments; the result is checked.
    let fd = unsafe { libc::eventfd(0, flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly created descriptor nobody else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Clears an eventfd; true if it was signalled.
pub(crate) fn read_eventfd(fd: RawFd) -> bool {
    let mut buf = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a local array from a non-blocking eventfd.
    unsafe { libc::read(fd, buf.as_mut_ptr().cast(), 8) == 8 }
}

/// Pins the calling thread to `core` when the machine has a core to spare per reactor.
pub(crate) fn pin(index: usize, reactors: usize) {
    let Some(cores) = core_affinity::get_core_ids() else {
        return;
    };
    // Leave the first core to signaling and the OS.
    if cores.len() > reactors {
        let _ = core_affinity::set_for_current(cores[(index + 1) % cores.len()]);
    }
}

#[cfg(test)]
mod tests;
