//! The WebSocket frame layer as the gateway runs it never panics and stays bounded.
//!
//! Input: raw bytes from a browser after the upgrade (masked frames, fragments, control frames,
//! close codes, any lengths). A server-side tungstenite `WebSocket` with the gateway's limits
//! (`signaling/src/transport/ws.rs`: 64 KiB messages and frames, 8 KiB read and write buffers)
//! reads them from memory; each text or binary message goes through the connection's rules
//! (`transport::ws_policy::WsPolicy`, the same code `transport::ws::run` calls) and what they
//! forward reaches the signaling core as in `transport::driver`.
//! axum's `WebSocket` is tokio-tungstenite over the same tungstenite `WebSocketContext`; the
//! sync `WebSocket` used here drives that same state machine without a runtime.
#![no_main]
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;
use signaling::b2bua::core::Peer;
use signaling::transport::ws::{ConnName, MAX_MESSAGE_BYTES};
use signaling::transport::ws_policy::{Received, Verdict, WsPolicy};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Error, Message, WebSocket};

/// The client's bytes, handed out in uneven pieces with a "no data yet" between some reads, as a
/// TCP socket under tokio does (tokio-tungstenite turns Pending into `WouldBlock`): frame
/// headers and payloads get split at every offset over a run.
struct Wire<'a> {
    input: &'a [u8],
    pos: usize,
    reads: usize,
}

impl Read for Wire<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.reads % 3 == 0 && self.pos < self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let piece = 1 + (self.pos.wrapping_mul(7919) ^ self.reads) % 1500;
        let n = piece.min(buf.len()).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        // n == 0 at the end: the browser closed the TCP connection.
        Ok(n)
    }
}

impl Write for Wire<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The gateway's close on a violation (`transport::ws::close`).
fn close(ws: &mut WebSocket<Wire<'_>>, code: u16, why: &'static str) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: why.into(),
    };
    let _ = ws.send(Message::Close(Some(frame)));
}

fuzz_target!(|data: &[u8]| {
    // The limits `transport::ws::upgrade` sets on axum's WebSocketUpgrade (whose defaults are
    // tungstenite's, so masking is required and the write buffer is unbounded).
    let config = WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let wire = Wire {
        input: data,
        pos: 0,
        reads: 0,
    };
    let mut ws = WebSocket::from_raw_socket(wire, Role::Server, Some(config));
    let mut core = common::core();
    let conn = ConnName("c1.invalid".into());
    core.handle_ws_opened(&conn, std::net::Ipv4Addr::LOCALHOST.into());
    let mut now = Instant::now();
    // A high rate: the fuzzer exercises the frames, the rate has its own unit tests.
    let mut policy = WsPolicy::new(now, 1_000_000, Duration::from_secs(30));
    // Every read consumes input or returns WouldBlock at most every third call, so 4 reads per
    // byte (plus the end) bound the loop.
    for _ in 0..data.len() * 4 + 16 {
        let received = match ws.read() {
            Ok(Message::Text(t)) => Received::Text(t.as_str().to_owned()),
            Ok(Message::Binary(b)) => Received::Binary(b.to_vec()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Received::Control,
            Ok(Message::Close(_)) => break,
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(Error::Capacity(_)) => Received::TooBig,
            Err(_) => break,
        };
        let text = match policy.handle_message(now, received, 0) {
            Verdict::Forward(text) => text,
            Verdict::Answer(a) => {
                if ws.send(Message::Text(a.into())).is_err() {
                    break;
                }
                continue;
            }
            Verdict::Ignore => continue,
            Verdict::Close(why) => {
                let (code, text, _) = why.parts();
                close(&mut ws, code, text);
                break;
            }
        };
        assert!(
            text.len() <= MAX_MESSAGE_BYTES,
            "a {} byte message got through",
            text.len()
        );
        // --- as `transport::driver::run_core` ---
        core.handle_message(now, Peer::Ws(conn.clone()), text.as_bytes());
        now += Duration::from_millis(20);
        core.handle_timeout(now);
        while let Some(t) = core.poll_transmit() {
            // What the core sends this connection goes out on the same WebSocket.
            if t.to == Peer::Ws(conn.clone()) {
                let text = String::from_utf8_lossy(&t.bytes).into_owned();
                if ws.send(Message::Text(text.into())).is_err() {
                    break;
                }
            }
        }
        while core.poll_command().is_some() {}
        while core.poll_event().is_some() {}
    }
    core.handle_ws_closed(now, &conn);
});
