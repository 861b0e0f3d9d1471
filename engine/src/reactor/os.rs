//! The reactor's operating-system helpers: socket options, eventfds, the realtime clock of the
//! kernel's receive stamps, and thread pinning. With `ring.rs`, the only place of the engine's
//! reactor where `unsafe` appears; each block says why it holds.

#![allow(
    unsafe_code,
    reason = "one of the two files of the reactor that talk to the kernel through raw pointers"
)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// `CLOCK_REALTIME` in ns since the epoch: the clock of the kernel's receive stamps.
pub(super) fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// Asks the kernel to stamp every datagram `sock` receives (`SO_TIMESTAMPNS`); without it
/// residence is not measured for that socket, nothing else changes.
pub(super) fn enable_rx_stamps(sock: &UdpSocket) {
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

/// Adds 1 to an eventfd counter (wakes whoever polls or reads it).
pub(crate) fn write_eventfd(fd: RawFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes 8 bytes from a local array to an eventfd; a full counter (EAGAIN) only means
    // the reader is already due to wake.
    let _ = unsafe { libc::write(fd, one.as_ptr().cast(), 8) };
}

/// Kernel buffer size asked for the shared WebRTC socket (the kernel may grant less).
pub(super) const WEBRTC_SOCKET_BUFFER: i32 = 8 << 20;

/// Sets SO_RCVBUF/SO_SNDBUF, with the FORCE variants first (they pass `rmem_max` when the
/// process may); failures leave the kernel's default, which still works, only with less room.
pub(super) fn set_socket_buffers(sock: &UdpSocket, bytes: i32) {
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

/// A close-on-exec eventfd; non-blocking for one that signaling polls, blocking for a reactor's
/// wake-up, which only the ring reads (a blocking file makes io_uring wait for the counter
/// instead of completing the read with `EAGAIN`).
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

/// Puts the calling thread under `SCHED_FIFO` at `priority` (1-99), so a packet's arrival
/// preempts ordinary work on its core at once; 0 leaves normal scheduling.
pub(crate) fn set_realtime(priority: u8) -> io::Result<()> {
    if priority == 0 {
        return Ok(());
    }
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: pthread_self() is the calling thread; `param` is a valid sched_param that outlives
    // the call, which only reads it.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
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
