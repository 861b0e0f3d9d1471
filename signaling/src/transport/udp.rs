//! UDP sockets of the signaling thread (SIP/UDP, the ng control socket): bound at start-up,
//! non-blocking, with a receive buffer that absorbs a flood's burst.

use std::net::{SocketAddr, UdpSocket};

/// A control socket's receive buffer: room for a burst of a flood's datagrams ahead of
/// the per-source limit (they are dropped there, cheaply, rather than by the kernel, which
/// cannot tell a flood's datagram from a peer's).
const RCVBUF: libc::c_int = 8 << 20;

/// Asks for `bytes` of receive buffer: beyond `net.core.rmem_max` when the process may
/// (SO_RCVBUFFORCE, CAP_NET_ADMIN), else up to it. Best effort: a smaller buffer only means
/// earlier kernel drops.
pub fn raise_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt on a socket this function borrows, with a pointer to a live c_int
        // and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Binds `addr`, non-blocking, with the large receive buffer. The error names the address.
pub fn bind(addr: SocketAddr) -> Result<UdpSocket, String> {
    #[allow(
        clippy::disallowed_methods,
        reason = "transport binds the SIP/UDP and ng sockets"
    )]
    let sock = UdpSocket::bind(addr).map_err(|e| format!("cannot bind UDP {addr}: {e}"))?;
    sock.set_nonblocking(true).map_err(|e| e.to_string())?;
    raise_receive_buffer(&sock, RCVBUF);
    Ok(sock)
}
