//! Malformed SIP gets 400 (requests) or is dropped and counted; the gateway keeps answering.

#![allow(
    clippy::disallowed_methods,
    reason = "a test drives real sockets and processes and bounds its waits by the real clock"
)]

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

fn options(branch: u32) -> String {
    format!(
        "OPTIONS sip:gw@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:t@127.0.0.1>;tag=a{branch}\r\nTo: <sip:gw@127.0.0.1>\r\n\
         Call-ID: opt{branch}@test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A request whose CSeq method does not match (RFC 4475 mismatch01 style): answerable with 400.
fn mismatched(i: u32) -> String {
    options(i).replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")
}

fn status_of(bytes: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(bytes);
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn hundred_malformed_messages_then_options_still_works() {
    let dir = temp_dir("malformed");
    // The UDP side is a peer the gateway takes calls from (a stranger gets a few answers, then
    // silence: attack_reflection.rs).
    let mut cmd = command(&dir);
    cmd.env("ACCEPT_IPS", "[[WSS]],127.0.0.1");
    let gw = Gateway::start(cmd);

    // UDP: 50 answerable (400) and 25 garbage (dropped), then a good OPTIONS.
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    for i in 0..50 {
        udp.send_to(mismatched(i).as_bytes(), ("127.0.0.1", gw.sip_port))
            .unwrap();
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(status_of(&buf[..n]), 400);
        assert!(String::from_utf8_lossy(&buf[..n]).contains(&format!("z9hG4bK{i}")));
    }
    for i in 0..25u8 {
        udp.send_to(&[i, 0xff, b'\r', b'\n', 0x80], ("127.0.0.1", gw.sip_port))
            .unwrap();
    }
    udp.send_to(options(999).as_bytes(), ("127.0.0.1", gw.sip_port))
        .unwrap();
    let (n, _) = udp.recv_from(&mut buf).unwrap();
    assert_eq!(
        status_of(&buf[..n]),
        200,
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    // WebSocket: 25 malformed (400), then OPTIONS.
    let tls = tls_connect(gw.https_port).await;
    let mut req = format!("wss://127.0.0.1:{}/ws", gw.https_port)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    for i in 100..125 {
        let m = mismatched(i).replace("SIP/2.0/UDP 127.0.0.1:5999", "SIP/2.0/WSS abc.invalid");
        ws.send(Message::Text(m.into())).await.unwrap();
        assert_eq!(status_of(next_text(&mut ws).await.as_bytes()), 400);
    }
    ws.send(Message::Text(options(1000).into())).await.unwrap();
    let reply = next_text(&mut ws).await;
    assert_eq!(status_of(reply.as_bytes()), 200, "{reply}");
    assert!(reply.contains("Allow: "));

    let m = https_get(gw.https_port, "/metrics", "").await.body;
    let count = |labels: &str| metric(&m, &format!("webrtc_phone_sip_malformed_total{{{labels}}}"));
    assert_eq!(
        count("transport=\"udp\",action=\"rejected\""),
        Some(50.0),
        "{m}"
    );
    assert_eq!(
        count("transport=\"udp\",action=\"dropped\""),
        Some(25.0),
        "{m}"
    );
    assert_eq!(
        count("transport=\"ws\",action=\"rejected\""),
        Some(25.0),
        "{m}"
    );
}

async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => t.as_str().to_owned(),
        other => panic!("no text reply: {other:?}"),
    }
}
