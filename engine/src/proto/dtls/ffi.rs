//! The OpenSSL calls DTLS needs that the openssl crate does not wrap: the retransmit timer
//! callback (`DTLS_set_timer_cb`), `DTLSv1_get_timeout` / `DTLSv1_handle_timeout` (macros over
//! `SSL_ctrl`), and the thread's error queue. Each behind a safe function; the only `unsafe` of
//! DTLS.

#![allow(
    unsafe_code,
    reason = "OpenSSL's C API, each call's safety argued at the call"
)]

use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;
use std::time::Duration;

use foreign_types_shared::ForeignTypeRef;
use openssl::ssl::{Ssl, SslRef};

use super::DtlsError;

/// Longest retransmit interval, µs (RFC 6347 §4.2.4.1: at most 60 s).
pub(super) const MAX_TIMEOUT_US: c_uint = 60_000_000;

/// `DTLS_CTRL_GET_TIMEOUT` (`DTLSv1_get_timeout` is a macro the openssl crate does not wrap).
const DTLS_CTRL_GET_TIMEOUT: c_int = 73;
/// `DTLS_CTRL_HANDLE_TIMEOUT` (`DTLSv1_handle_timeout`).
const DTLS_CTRL_HANDLE_TIMEOUT: c_int = 74;

type DtlsTimerCb = unsafe extern "C" fn(*mut openssl_sys::SSL, c_uint) -> c_uint;

extern "C" {
    /// OpenSSL >= 1.1.1: lets the application choose the retransmit durations.
    fn DTLS_set_timer_cb(s: *mut openssl_sys::SSL, cb: Option<DtlsTimerCb>);
}

/// Per-`SSL` initial retransmit timeout in µs, read by [`timer_cb`].
fn timeout_index() -> Result<openssl::ex_data::Index<Ssl, c_uint>, DtlsError> {
    static INDEX: OnceLock<Result<openssl::ex_data::Index<Ssl, c_uint>, String>> = OnceLock::new();
    INDEX
        .get_or_init(|| Ssl::new_ex_index::<c_uint>().map_err(|e| e.to_string()))
        .clone()
        .map_err(DtlsError::Setup)
}

/// OpenSSL asks for the first duration with `previous_us == 0` and for the next one after each
/// retransmission: the endpoint's initial timeout, then doubling up to 60 s.
unsafe extern "C" fn timer_cb(ssl: *mut openssl_sys::SSL, previous_us: c_uint) -> c_uint {
    if previous_us != 0 {
        return previous_us.saturating_mul(2).min(MAX_TIMEOUT_US);
    }
    let initial = timeout_index().ok().and_then(|index| {
        // SAFETY: OpenSSL passes the live SSL this callback was installed on; the reference
        // does not outlive the call.
        let ssl = unsafe { SslRef::from_ptr(ssl) };
        ssl.ex_data(index).copied()
    });
    initial.unwrap_or(1_000_000)
}

/// Makes OpenSSL ask [`timer_cb`] for its retransmit intervals, starting at `initial_us`.
pub(super) fn install_retransmit_timer(
    ssl: &mut SslRef,
    initial_us: c_uint,
) -> Result<(), DtlsError> {
    ssl.set_ex_data(timeout_index()?, initial_us);
    // SAFETY: `ssl` is a live SSL; the callback is a plain function valid for the whole
    // program and reads only the ex_data slot set just above.
    unsafe { DTLS_set_timer_cb(ssl.as_ptr(), Some(timer_cb)) };
    Ok(())
}

/// `DTLSv1_handle_timeout`: retransmits if OpenSSL's timer has run out; false if OpenSSL gave up
/// (too many retransmissions).
pub(super) fn handle_timeout(ssl: &SslRef) -> bool {
    // SAFETY: the SSL is live; DTLS_CTRL_HANDLE_TIMEOUT takes no argument.
    let r = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_HANDLE_TIMEOUT,
            0,
            std::ptr::null_mut(),
        )
    };
    r >= 0
}

/// `DTLSv1_get_timeout`: what is left of OpenSSL's retransmit timer, if armed.
pub(super) fn timeout_left(ssl: &SslRef) -> Option<Duration> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: the SSL is live; DTLS_CTRL_GET_TIMEOUT writes one `struct timeval` through the
    // pointer, which points at `tv`.
    let armed = unsafe {
        openssl_sys::SSL_ctrl(
            ssl.as_ptr(),
            DTLS_CTRL_GET_TIMEOUT,
            0,
            (&mut tv as *mut libc::timeval).cast::<c_void>(),
        )
    } > 0;
    armed.then(|| {
        Duration::from_secs(tv.tv_sec.max(0) as u64)
            + Duration::from_micros(tv.tv_usec.max(0) as u64)
    })
}

/// Empties this thread's OpenSSL error queue. `SSL_get_error` reports `SSL_ERROR_SSL` whenever
/// the queue holds anything, so it must be empty before each SSL call (SSL_get_error(3)). Other
/// OpenSSL users on the reactor thread can leave entries behind: unpatched libsrtp 2.3's AES-GCM
/// set a dummy tag on its encrypt context too, which OpenSSL 3 refuses with "invalid tag" on
/// every protected packet (third_party/srtp2-sys now skips that call). Without this, a
/// retransmitted flight or a close_notify arriving after such an entry read as a failed
/// handshake.
pub(super) fn clear_error_queue() {
    // SAFETY: ERR_clear_error takes no arguments and touches only this thread's error queue.
    unsafe { openssl_sys::ERR_clear_error() };
}

/// The last entry of this thread's error queue, left in place (0: none).
#[cfg(test)]
pub(super) fn peek_last_error() -> std::ffi::c_ulong {
    // SAFETY: no arguments; reads this thread's error queue without changing it.
    unsafe { openssl_sys::ERR_peek_last_error() }
}
