//! The reactor's buffers: a provided buffer ring the kernel fills from multishot `recvmsg`
//! (io_uring `IORING_REGISTER_PBUF_RING`), plus a few transmit buffers for datagrams the
//! sessions originate (DTLS flights). Every buffer has room for a send's destination address,
//! so a received buffer can go straight back out in a `Send` SQE and return to the ring when
//! that send completes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

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

/// The provided buffer ring and the transmit pool. Buffer ids `0..ring_entries` belong to the
/// ring; `ring_entries..ring_entries + tx` are transmit buffers.
pub(crate) struct Buffers {
    ring: Mapping,
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

    /// Buffer `bid`, whole.
    ///
    /// # Safety
    /// The caller must own `bid`: a ring buffer the kernel handed over in a completion and that
    /// was not recycled since, or a transmit buffer taken with [`Buffers::take_tx`]. The kernel
    /// writes only to ring buffers it was given and not yet returned.
    pub(crate) unsafe fn buf_mut(&mut self, bid: u16) -> &mut [u8] {
        // SAFETY: in bounds (buf_ptr); exclusive per the caller's contract, and `&mut self`
        // prevents a second reference through this struct.
        unsafe { std::slice::from_raw_parts_mut(self.buf_ptr(bid), BUF_SIZE) }
    }

    /// True if `bid` names a buffer of this set.
    pub(crate) fn is_valid(&self, bid: u16) -> bool {
        bid < self.entries + self.tx
    }

    /// A free transmit buffer.
    pub(crate) fn take_tx(&mut self) -> Option<u16> {
        self.tx_free.pop()
    }

    /// Gives `bid` back: to the kernel for a ring buffer (visible after [`Buffers::publish`]),
    /// to the pool for a transmit buffer.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid >= self.entries {
            if bid < self.entries + self.tx {
                self.tx_free.push(bid);
            }
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
    fn transmit_buffers_come_back() {
        let mut b = Buffers::new(8, 2).unwrap();
        let x = b.take_tx().unwrap();
        let y = b.take_tx().unwrap();
        assert!(x >= 8 && y >= 8 && x != y);
        assert_eq!(b.take_tx(), None);
        b.recycle(x);
        assert_eq!(b.take_tx(), Some(x));
        // SAFETY: y was taken from the pool and not returned.
        let buf = unsafe { b.buf_mut(y) };
        assert_eq!(buf.len(), BUF_SIZE);
        buf[BUF_SIZE - 1] = 1;
    }
}
