//! The reactor's io_uring and its buffers, behind safe methods: the only place of the reactor
//! that builds submission entries, so every pointer the kernel is given is to memory this
//! module owns and keeps until the completion (with `os.rs`, the only `unsafe` of the reactor).
//!
//! Buffers: a provided buffer ring the kernel fills from multishot `recvmsg`
//! (io_uring `IORING_REGISTER_PBUF_RING`), plus a few transmit buffers for datagrams the
//! sessions originate (DTLS flights). Every buffer has room for a send's destination address,
//! so a received buffer can go straight back out in a `Send` SQE and return to the ring when
//! that send completes. Each buffer's owner (the kernel, the reactor, a send in flight) is
//! tracked, so the reactor can only touch a buffer that is its own.

#![allow(
    unsafe_code,
    reason = "one of the two files of the reactor that talk to the kernel through raw pointers"
)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::BufRingEntry;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// Bytes per buffer: a 1500-byte datagram plus the recvmsg header and the SRTP tag fit.
pub(crate) const BUF_SIZE: usize = 2048;

/// An anonymous, page-aligned, zeroed memory mapping.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing refers to the mapping once its
        // owner (the reactor, after its ring is gone) drops it.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Who holds a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BufState {
    /// Given to the kernel (a ring buffer published or about to be), or a free transmit buffer.
    Away,
    /// The reactor's, to read and write.
    Ours,
    /// A send from it is in flight: the kernel reads it until the send completes.
    Sending,
}

/// The provided buffer ring and the transmit pool. Buffer ids `0..ring_entries` belong to the
/// ring; `ring_entries..ring_entries + tx` are transmit buffers.
pub(crate) struct Buffers {
    ring: Mapping,
    /// Who holds each buffer now.
    state: Vec<BufState>,
    bufs: Mapping,
    entries: u16,
    tx: u16,
    tail: u16,
    published: u16,
    tx_free: Vec<u16>,
    /// Destination of the send in flight from each buffer.
    addrs: Vec<libc::sockaddr_storage>,
}

impl Buffers {
    /// `entries` (a power of two) ring buffers and `tx` transmit buffers, all owned by the caller
    /// until [`Buffers::fill_ring`].
    pub(crate) fn new(entries: u16, tx: u16) -> io::Result<Self> {
        assert!(entries.is_power_of_two(), "io_uring needs a power of two");
        let ring = Mapping::new(usize::from(entries) * size_of::<BufRingEntry>())?;
        let bufs = Mapping::new((usize::from(entries) + usize::from(tx)) * BUF_SIZE)?;
        // SAFETY: sockaddr_storage is plain old data; all zero is a valid (AF_UNSPEC) value.
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Ok(Self {
            ring,
            bufs,
            entries,
            tx,
            tail: 0,
            published: 0,
            tx_free: (entries..entries + tx).rev().collect(),
            state: (0..entries + tx)
                .map(|b| {
                    if b < entries {
                        BufState::Ours
                    } else {
                        BufState::Away
                    }
                })
                .collect(),
            addrs: vec![zero; usize::from(entries) + usize::from(tx)],
        })
    }

    /// The ring's address for `register_buf_ring_with_flags`.
    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring.ptr.as_ptr() as u64
    }

    /// Number of ring entries.
    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// Hands every ring buffer to the kernel (after registration).
    pub(crate) fn fill_ring(&mut self) {
        for bid in 0..self.entries {
            self.recycle(bid);
        }
        self.publish();
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        debug_assert!(bid < self.entries + self.tx);
        // SAFETY: bid < entries + tx, so the offset stays inside the buffer mapping.
        unsafe { self.bufs.ptr.as_ptr().add(usize::from(bid) * BUF_SIZE) }
    }

    /// Buffer `bid`, whole: a ring buffer the kernel handed over ([`Buffers::take_received`])
    /// and not given back since, or a transmit buffer taken with [`Buffers::take_tx`].
    ///
    /// # Panics
    /// If `bid` is not the reactor's (a bug of the caller: the kernel may be using it).
    pub(crate) fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        assert!(
            self.state.get(usize::from(bid)) == Some(&BufState::Ours),
            "buffer {bid} is not the reactor's"
        );
        // SAFETY: in bounds (buf_ptr, and `state` has one entry per buffer); the kernel neither
        // reads nor writes a buffer in state `Ours` (it was handed over in a completion, or is a
        // transmit buffer with no send in flight), and `&mut self` prevents a second reference.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr(bid), BUF_SIZE) }
    }

    /// Takes over ring buffer `bid`, which the kernel handed over in a receive completion; false
    /// if it names no buffer the kernel held.
    pub(crate) fn take_received(&mut self, bid: u16) -> bool {
        match self.state.get_mut(usize::from(bid)) {
            Some(s) if *s == BufState::Away && bid < self.entries => {
                *s = BufState::Ours;
                true
            }
            _ => false,
        }
    }

    /// A free transmit buffer.
    pub(crate) fn take_tx(&mut self) -> Option<u16> {
        let bid = self.tx_free.pop()?;
        self.state[usize::from(bid)] = BufState::Ours;
        Some(bid)
    }

    /// Gives `bid` back: to the kernel for a ring buffer (visible after [`Buffers::publish`]),
    /// to the pool for a transmit buffer.
    /// A buffer that is not the reactor's (already given back) is left alone.
    pub(crate) fn recycle(&mut self, bid: u16) {
        match self.state.get_mut(usize::from(bid)) {
            Some(s) if *s != BufState::Away => *s = BufState::Away,
            _ => return,
        }
        if bid >= self.entries {
            self.tx_free.push(bid);
            return;
        }
        let slot = usize::from(self.tail & (self.entries - 1));
        let addr = self.buf_ptr(bid) as u64;
        // SAFETY: slot < entries, inside the ring mapping; the kernel reads entries only up to
        // the published tail, and this slot is past it until publish().
        let entry = unsafe { &mut *self.ring.ptr.as_ptr().cast::<BufRingEntry>().add(slot) };
        entry.set_addr(addr);
        entry.set_len(BUF_SIZE as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes recycled ring buffers to the kernel (one release store per batch).
    pub(crate) fn publish(&mut self) {
        if self.published == self.tail {
            return;
        }
        // SAFETY: the tail field lives in entry 0's reserved bytes (the kernel ABI); the mapping
        // is page aligned and initialised, as BufRingEntry::tail requires.
        let tail = unsafe { BufRingEntry::tail(self.ring.ptr.as_ptr().cast::<BufRingEntry>()) };
        // SAFETY: the tail is a naturally aligned u16 the kernel reads concurrently, so it is
        // written atomically with release ordering after the entries.
        let tail = unsafe { AtomicU16::from_ptr(tail.cast_mut()) };
        tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
    }

    /// `bid`'s send has been queued: the kernel reads it until [`Buffers::recycle`].
    fn mark_sending(&mut self, bid: u16) {
        self.state[usize::from(bid)] = BufState::Sending;
    }

    /// Whether `bid` is the reactor's (not the kernel's, not in a send).
    pub(crate) fn is_ours(&self, bid: u16) -> bool {
        self.state.get(usize::from(bid)) == Some(&BufState::Ours)
    }

    /// Stores `to` as buffer `bid`'s send destination; returns the pointer and length for the
    /// SQE (valid until the buffer is recycled).
    /// `v6_socket`: the socket is AF_INET6, so an IPv4 peer (reported as IPv4 by
    /// [`read_sockaddr`]) is addressed by its v4-mapped form.
    pub(crate) fn set_dest(
        &mut self,
        bid: u16,
        to: SocketAddr,
        v6_socket: bool,
    ) -> (*const libc::sockaddr, libc::socklen_t) {
        let to = match to {
            SocketAddr::V4(a) if v6_socket => {
                SocketAddr::new(IpAddr::V6(a.ip().to_ipv6_mapped()), a.port())
            }
            other => other,
        };
        let slot = &mut self.addrs[usize::from(bid)];
        let len = write_sockaddr(to, slot);
        ((slot as *const libc::sockaddr_storage).cast(), len)
    }
}

/// A socket as the ring's operations name it: its slot in the ring's registered file table
/// (no file lookup per operation), or its descriptor where it has no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum File {
    Fixed(u32),
    Raw(RawFd),
}

impl File {
    /// The SQE's file field and the flag that says which kind it is (what `types::Fixed`
    /// does), so one builder serves both kinds.
    fn target(self) -> (types::Fd, squeue::Flags) {
        match self {
            File::Fixed(i) => (types::Fd(i as RawFd), squeue::Flags::FIXED_FILE),
            File::Raw(fd) => (types::Fd(fd), squeue::Flags::empty()),
        }
    }
}

/// How a reactor waits for completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batching {
    /// One completion wakes the reactor (`MEDIA_BATCH_US=0`).
    Off,
    /// io_uring's min-wait (Linux 6.12+): the reactor sleeps until `BATCH_WANT` completions are
    /// in or this many µs have passed, and after that wakes for the first one.
    MinWait(u32),
    /// The same in user space, for a kernel without min-wait: the first completion wakes the
    /// reactor; if it came sooner than this many µs after the reactor went to sleep, the
    /// reactor sleeps out the rest of that budget and then takes everything that came in
    /// meanwhile.
    Linger(u32),
}

impl std::fmt::Display for Batching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Batching::Off => write!(f, "off (one completion per wake-up)"),
            Batching::MinWait(us) => write!(f, "io_uring min-wait, {us} us budget"),
            Batching::Linger(us) => write!(f, "bounded linger, {us} us budget"),
        }
    }
}

impl Batching {
    /// The batching of a budget of `us` µs (0 = off) on a ring whose kernel has min-wait
    /// (`min_wait`) or not.
    pub(crate) fn from_budget(us: u32, min_wait: bool) -> Self {
        match us {
            0 => Batching::Off,
            us if min_wait => Batching::MinWait(us),
            us => Batching::Linger(us),
        }
    }
}

/// Buffer ring entries (measured-limits §1 used 1024 x 2 KiB).
const RING_BUFFERS: u16 = 1024;
/// Transmit buffers for datagrams the sessions originate.
const TX_BUFFERS: u16 = 64;
/// The buffer group id of the provided ring.
const BGID: u16 = 0;
/// Submission queue size.
pub(super) const SQ_ENTRIES: u32 = 1024;
/// Buffers in all: at most this many sends can be in flight.
pub(super) const ALL_BUFFERS: usize = RING_BUFFERS as usize + TX_BUFFERS as usize;
/// The most registered files a reactor asks for (the table counts against `RLIMIT_NOFILE`;
/// sockets beyond it, or all of them if the kernel refuses the table, go by descriptor).
const MAX_REGISTERED_FILES: u32 = 16_384;
/// Completions a batched wait asks for: the reactor wakes early once this many are in.
pub(crate) const BATCH_WANT: usize = 128;
/// The name length reserved in each received buffer: room for a `sockaddr_in6`.
const NAME_LEN: u32 = size_of::<libc::sockaddr_in6>() as u32;
/// Control bytes reserved in each received buffer: one `SCM_TIMESTAMPNS` message
/// (`CMSG_SPACE(sizeof(struct timespec))`).
const CONTROL_LEN: usize = size_of::<libc::cmsghdr>() + size_of::<libc::timespec>();

/// A datagram a multishot receive delivered, in buffer `bid` (the reactor's until it is sent
/// or recycled).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    pub(crate) bid: u16,
    /// Where the payload starts in the buffer, and its length.
    pub(crate) off: usize,
    pub(crate) len: usize,
    /// The sender (none if the kernel reported an address family we do not read).
    pub(crate) src: Option<SocketAddr>,
    /// The kernel's receive stamp, ns since the epoch (`SO_TIMESTAMPNS`).
    pub(crate) stamp: Option<u64>,
    /// The datagram was longer than the buffer.
    pub(crate) truncated: bool,
}

/// One reactor's io_uring with its buffers. Fields drop in order: the ring goes before the
/// memory it was told about.
pub(crate) struct Ring {
    ring: IoUring,
    bufs: Buffers,
    /// The template of every multishot receive (name and control lengths).
    msghdr: Box<libc::msghdr>,
    /// Where wake-up reads land.
    wake_buf: Box<[u8; 8]>,
    /// The sockets are AF_INET6: IPv4 destinations go out v4-mapped.
    v6_sockets: bool,
    /// Entries of the registered file table (0: none; sockets are named by descriptor).
    files: u32,
}

impl Ring {
    /// A ring (`SINGLE_ISSUER | DEFER_TASKRUN | COOP_TASKRUN`) with its provided buffers
    /// registered and handed to the kernel, and a registered file table for `sockets` sockets
    /// (at most `MAX_REGISTERED_FILES`). `v6_sockets`: the sockets sends go out on are
    /// AF_INET6.
    pub(crate) fn new(v6_sockets: bool, sockets: usize) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_coop_taskrun()
            .build(SQ_ENTRIES)?;
        let mut bufs = Buffers::new(RING_BUFFERS, TX_BUFFERS)?;
        // SAFETY: the ring memory is a page-aligned mapping of RING_BUFFERS entries owned by
        // `bufs`, which `Ring` keeps alive as long as the io_uring (`ring` drops first).
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
        let mut r = Self {
            ring,
            bufs,
            msghdr,
            wake_buf: Box::new([0; 8]),
            v6_sockets,
            files: 0,
        };
        r.register_file_table(
            u32::try_from(sockets).map_or(MAX_REGISTERED_FILES, |n| n.min(MAX_REGISTERED_FILES)),
        );
        Ok(r)
    }

    /// Queues an SQE; false if the ring would not take it even after a submit.
    ///
    /// # Safety
    /// Whatever `sqe` points at must stay valid until its completion.
    #[must_use]
    unsafe fn push(&mut self, sqe: &squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: the caller's contract.
            if unsafe { self.ring.submission().push(sqe) }.is_ok() {
                return true;
            }
            // The queue is full: hand it to the kernel and retry.
            let _ = self.ring.submit();
        }
        false
    }

    /// Arms a multishot receive on `file` into the provided buffers; false if the ring is full.
    #[must_use]
    pub(crate) fn recv_multi(&mut self, file: File, user_data: u64) -> bool {
        let (fd, kind) = file.target();
        let sqe = opcode::RecvMsgMulti::new(fd, &*self.msghdr, BGID)
            .build()
            .flags(kind)
            .user_data(user_data);
        // SAFETY: the msghdr is boxed and lives as long as the ring; the buffers are the
        // registered provided ring, also owned by `self`.
        unsafe { self.push(&sqe) }
    }

    /// Arms an 8-byte read of eventfd `fd` (the wake-up); false if the ring is full.
    #[must_use]
    pub(crate) fn read_wake(&mut self, fd: RawFd, user_data: u64) -> bool {
        let sqe = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: the wake buffer is boxed and lives as long as the ring; only the kernel
        // writes it (its value is never read).
        unsafe { self.push(&sqe) }
    }

    /// Cancels the request with `target` user data; false if the ring is full.
    #[must_use]
    pub(crate) fn cancel(&mut self, target: u64, user_data: u64) -> bool {
        let sqe = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: a cancel points at no memory.
        unsafe { self.push(&sqe) }
    }

    /// Sends `len` bytes of buffer `bid` from `off` to `to` on socket `file`. The buffer is in
    /// flight until [`Ring::send_done`]; if the ring will not take the send it is recycled at
    /// once and the result is false.
    #[must_use]
    pub(crate) fn send(
        &mut self,
        file: File,
        bid: u16,
        off: usize,
        len: usize,
        to: SocketAddr,
        user_data: u64,
    ) -> bool {
        // `buf_mut` checks that the buffer is the reactor's; the slice that the send is in.
        let ptr = self.bufs.buf_mut(bid)[off..off + len].as_ptr();
        let (dest, dest_len) = self.bufs.set_dest(bid, to, self.v6_sockets);
        let (fd, kind) = file.target();
        let sqe = opcode::Send::new(fd, ptr, len as u32)
            .dest_addr(dest)
            .dest_addr_len(dest_len)
            .build()
            .flags(kind)
            .user_data(user_data);
        // SAFETY: the buffer and its destination address are the reactor's (checked by buf_mut) and
        // become `Sending`: nothing writes or recycles them until `send_done`.
        if unsafe { self.push(&sqe) } {
            self.bufs.mark_sending(bid);
            true
        } else {
            self.bufs.recycle(bid);
            false
        }
    }

    /// A send from `bid` completed: the buffer goes back.
    pub(crate) fn send_done(&mut self, bid: u16) {
        if self.bufs.state.get(usize::from(bid)) == Some(&BufState::Sending) {
            self.bufs.recycle(bid);
        }
    }

    /// Takes over the buffer of a receive completion (`res` bytes in buffer `bid`) and reads
    /// its parts; `Err(())` if `bid` was not the kernel's (then nothing changes hands), and
    /// `Ok(None)` for a completion the kernel could not describe (the buffer is recycled).
    #[allow(
        clippy::result_unit_err,
        reason = "the only failure is a stray buffer id"
    )]
    pub(crate) fn take_received(&mut self, bid: u16, res: i32) -> Result<Option<Received>, ()> {
        if !self.bufs.take_received(bid) {
            return Err(());
        }
        let buf = self.bufs.buf_mut(bid);
        let len = usize::try_from(res).unwrap_or(0).min(BUF_SIZE);
        let Ok(out) = types::RecvMsgOut::parse(&buf[..len], &self.msghdr) else {
            self.bufs.recycle(bid);
            return Ok(None);
        };
        let payload = out.payload_data();
        Ok(Some(Received {
            bid,
            off: payload.as_ptr() as usize - buf.as_ptr() as usize,
            len: payload.len(),
            src: read_sockaddr(out.name_data()),
            stamp: rx_stamp(out.control_data()),
            truncated: out.is_payload_truncated(),
        }))
    }

    /// Gives back the buffer of a failed receive completion, if it was the kernel's.
    pub(crate) fn discard_received(&mut self, bid: u16) {
        if self.bufs.take_received(bid) {
            self.bufs.recycle(bid);
        }
    }

    /// Buffer `bid`, whole, if it is the reactor's.
    pub(crate) fn buf(&mut self, bid: u16) -> &mut [u8] {
        self.bufs.buf_mut(bid)
    }

    /// A free transmit buffer.
    pub(crate) fn take_tx(&mut self) -> Option<u16> {
        self.bufs.take_tx()
    }

    /// Gives a buffer of the reactor's back (to the kernel, visible after [`Ring::publish`], or
    /// to the transmit pool).
    pub(crate) fn recycle(&mut self, bid: u16) {
        if self.bufs.is_ours(bid) {
            self.bufs.recycle(bid);
        }
    }

    /// Publishes recycled ring buffers to the kernel.
    pub(crate) fn publish(&mut self) {
        self.bufs.publish();
    }

    /// Moves the completions that are in into `out` as (user data, result, flags).
    pub(crate) fn completions(&mut self, out: &mut Vec<(u64, i32, u32)>) {
        for cqe in self.ring.completion() {
            out.push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
    }

    /// Submits what is queued and waits for completions for at most `timeout`, batched as
    /// `batching` says.
    pub(crate) fn submit_and_wait(
        &mut self,
        timeout: Duration,
        batching: Batching,
    ) -> io::Result<()> {
        submit_and_wait(&mut self.ring, timeout, batching)
    }

    /// Whether this ring's kernel has io_uring min-wait (`IORING_FEAT_MIN_TIMEOUT`). Asked of
    /// the reactor's own ring: a throwaway probe ring made on another thread is not harmless,
    /// since closing it sends io_uring's exit task work to the thread that made it, which
    /// interrupts that thread's blocking socket calls with a timeout (`EINTR`).
    pub(crate) fn has_min_wait(&self) -> bool {
        self.ring.params().is_feature_min_timeout()
    }

    /// Sets up a registered file table of `slots` entries, all empty; none if the kernel
    /// refuses (its size counts against `RLIMIT_NOFILE`): sockets are then named by descriptor.
    fn register_file_table(&mut self, slots: u32) {
        self.files = if self.ring.submitter().register_files_sparse(slots).is_ok() {
            slots
        } else {
            0
        };
    }

    /// Puts socket `fd` into table slot `slot`: how operations should name it from now on.
    pub(crate) fn register_file(&mut self, slot: usize, fd: RawFd) -> File {
        match u32::try_from(slot) {
            Ok(i) if i < self.files => {
                match self.ring.submitter().register_files_update(i, &[fd]) {
                    Ok(1) => File::Fixed(i),
                    _ => File::Raw(fd),
                }
            }
            _ => File::Raw(fd),
        }
    }

    /// Empties table slot `slot` (before its socket is closed; requests in flight keep their
    /// own reference to the file).
    pub(crate) fn unregister_file(&mut self, slot: u32) {
        let _ = self.ring.submitter().register_files_update(slot, &[-1]);
    }
}

impl Drop for Ring {
    /// Empties the registered file table now: left to the ring's teardown, which the kernel
    /// does later in a worker, the sockets (and their ports) would outlive the reactor by
    /// tens of milliseconds.
    fn drop(&mut self) {
        if self.files > 0 {
            let _ = self.ring.submitter().unregister_files();
        }
    }
}

/// The buffer id a receive completion's flags name.
pub(crate) fn buffer_of(flags: u32) -> Option<u16> {
    cqueue::buffer_select(flags)
}

/// Whether a multishot request stays armed after this completion.
pub(crate) fn more(flags: u32) -> bool {
    cqueue::more(flags)
}

/// Waits for completions (submitting what is queued) for at most `timeout`, batched as
/// `batching` says.
fn submit_and_wait(ring: &mut IoUring, timeout: Duration, batching: Batching) -> io::Result<()> {
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
    let ts = ts_of(timeout);
    let us = match batching {
        Batching::Off => return wait(ring, 1, &types::SubmitArgs::new().timespec(&ts)),
        Batching::MinWait(us) => {
            let args = types::SubmitArgs::new().timespec(&ts).min_wait_usec(us);
            return wait(ring, BATCH_WANT, &args);
        }
        Batching::Linger(us) => us,
    };
    // The user-space linger. The budget runs from when the reactor goes to sleep.
    let budget = Duration::from_micros(u64::from(us));
    #[allow(
        clippy::disallowed_methods,
        reason = "the batch budget runs from when the reactor went to sleep"
    )]
    let asleep = std::time::Instant::now();
    wait(ring, 1, &types::SubmitArgs::new().timespec(&ts))?;
    let slept = asleep.elapsed();
    let mut have = ring.completion().len();
    // A lone packet after a quiet spell (asleep longer than the budget) goes at once; a busy
    // reactor gathers for the rest of the budget (unless BATCH_WANT are in).
    if have > 0 && have < BATCH_WANT && slept < budget {
        std::thread::sleep(budget - slept);
        // What came in meanwhile is task work until the ring is entered, and one entry runs at
        // most 20 items (the kernel's IO_LOCAL_TW_DEFAULT_MAX when one completion is wanted):
        // enter, with nothing to wait for, until no more come or BATCH_WANT are in, so none of
        // them is left for the next budget.
        let zero = ts_of(Duration::ZERO);
        loop {
            wait(ring, 1, &types::SubmitArgs::new().timespec(&zero))?;
            let now_have = ring.completion().len();
            if now_have == have || now_have >= BATCH_WANT {
                break;
            }
            have = now_have;
        }
    }
    Ok(())
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

/// Writes `addr` as a C socket address; returns its length.
pub(crate) fn write_sockaddr(
    addr: SocketAddr,
    out: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a C socket address from the name bytes of a `recvmsg` completion.
pub(crate) fn read_sockaddr(name: &[u8]) -> Option<SocketAddr> {
    let family = i32::from(u16::from_ne_bytes([*name.first()?, *name.get(1)?]));
    let port = u16::from_be_bytes([*name.get(2)?, *name.get(3)?]);
    if family == libc::AF_INET {
        let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
        Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    } else if family == libc::AF_INET6 {
        let flow = u32::from_ne_bytes(name.get(4..8)?.try_into().ok()?);
        let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
        let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
        let ip = Ipv6Addr::from(ip);
        // A v4 peer on a dual-stack socket: report it as the v4 address it is.
        Some(match ip.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), port),
            None => SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trips() {
        for a in ["127.0.0.1:5004", "[::1]:6000", "[fe80::1%2]:7"] {
            let a: SocketAddr = a.parse().unwrap();
            // SAFETY: all-zero sockaddr_storage is valid.
            let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = write_sockaddr(a, &mut s);
            // SAFETY: `s` is initialised plain data of at least `len` bytes.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    (&s as *const libc::sockaddr_storage).cast::<u8>(),
                    len as usize,
                )
            };
            assert_eq!(read_sockaddr(bytes), Some(a));
        }
        assert_eq!(read_sockaddr(&[0, 0]), None);
    }

    #[test]
    #[allow(clippy::disallowed_methods, reason = "registers real sockets")]
    fn sockets_get_registered_slots_and_the_rest_go_by_descriptor() {
        let mut ring = Ring::new(false, 2).unwrap();
        let socks: Vec<_> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let fd = |i: usize| std::os::fd::AsRawFd::as_raw_fd(&socks[i]);
        assert_eq!(ring.register_file(0, fd(0)), File::Fixed(0));
        assert_eq!(ring.register_file(1, fd(1)), File::Fixed(1));
        // Past the table: by descriptor.
        assert_eq!(ring.register_file(2, fd(2)), File::Raw(fd(2)));
        // The table holds its own reference: a closed socket keeps its port until its slot is
        // emptied.
        let mut socks = socks.into_iter();
        let first = socks.next().unwrap();
        let port = first.local_addr().unwrap();
        drop(first);
        assert!(
            std::net::UdpSocket::bind(port).is_err(),
            "slot 0 still holds {port}"
        );
        ring.unregister_file(0);
        let rebound = (0..100).any(|_| {
            std::net::UdpSocket::bind(port).is_ok() || {
                std::thread::sleep(Duration::from_millis(10));
                false
            }
        });
        assert!(rebound, "{port} is free once slot 0 is emptied");
    }

    #[test]
    fn transmit_buffers_come_back() {
        let mut b = Buffers::new(8, 2).unwrap();
        let x = b.take_tx().unwrap();
        let y = b.take_tx().unwrap();
        assert!(x >= 8 && y >= 8 && x != y);
        assert_eq!(b.take_tx(), None);
        b.recycle(x);
        assert_eq!(b.take_tx(), Some(x));
        let buf = b.buf_mut(y);
        assert_eq!(buf.len(), BUF_SIZE);
        buf[BUF_SIZE - 1] = 1;
    }
}
