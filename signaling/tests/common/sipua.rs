//! The browser's SIP role for the gateway tests: the kit's WSS SIP UA (`testkit::sipua`) over
//! signaling's SIP stack, with SIP.js's message shapes and Chromium's SDP from the fixtures
//! (tests/fixtures/sipjs).

use std::time::Duration;

use signaling::sip::msg::SipMsg;

#[path = "../../../testkit/adapters/signaling_sip.rs"]
mod signaling_sip;

pub use signaling_sip::SignalingSip;
pub use testkit::sipua::{Dialog, UaConfig};

use super::tcp_connect_from;

/// One UA on one WebSocket connection, speaking through signaling's SIP stack.
pub type WsUa = testkit::sipua::Ua<SignalingSip>;

const INVITE: &[u8] = include_bytes!("../fixtures/sipjs/invite.txt");
const ANSWER: &[u8] = include_bytes!("../fixtures/sipjs/callee-200-ok-sdp-answer.txt");

/// How long a call waits for each final response.
pub const CALL_LIMIT: Duration = Duration::from_secs(15);

/// Chromium's SDP offer from the SIP.js fixture.
pub fn chromium_offer() -> String {
    let m = SipMsg::parse(INVITE).unwrap();
    String::from_utf8(m.body).unwrap()
}

/// Chromium's SDP answer from the SIP.js fixture.
pub fn chromium_answer() -> String {
    let m = SipMsg::parse(ANSWER).unwrap();
    String::from_utf8(m.body).unwrap()
}

/// Chromium's offer with its direction changed to `direction` (hold: sendonly) and the origin
/// version moved on, as a re-INVITE carries it.
pub fn chromium_reoffer(direction: &str) -> String {
    chromium_offer()
        .replace("a=sendrecv", &format!("a={direction}"))
        .replace(" 2 IN IP4", " 3 IN IP4")
}

/// A UA for `user` connected to the gateway's WSS port on 127.0.0.1.
pub async fn connect(port: u16, user: &str, pass: &str, domain: &str) -> WsUa {
    connect_from("127.0.0.1", port, user, pass, domain).await
}

/// As [`connect`], from the loopback address `src`.
pub async fn connect_from(src: &str, port: u16, user: &str, pass: &str, domain: &str) -> WsUa {
    let tcp = tcp_connect_from(src.parse().expect("an IP address"), port)
        .await
        .unwrap();
    WsUa::connect(
        testkit::tls::any_cert_client_config(),
        tcp,
        &format!("wss://127.0.0.1:{port}/ws"),
        UaConfig::new(user, pass, domain),
    )
    .await
    .unwrap()
}

/// What the tests do with a UA: Chromium's SDP, a closed connection is a missing answer,
/// everything else that fails is a bug of the test.
#[allow(async_fn_in_trait, reason = "test helpers used from one runtime")]
pub trait Browser {
    /// Calls `target` with Chromium's offer; the dialog after the final response (ACKed).
    async fn call(&mut self, target: &str) -> Dialog;
    /// Sends the INVITE with Chromium's offer and returns at once.
    async fn start_call(&mut self, target: &str) -> Dialog;
    /// Waits for the final response of a [`Browser::start_call`].
    async fn finish_call(&mut self, d: Dialog) -> Dialog;
    /// Answers an incoming call with Chromium's answer; the INVITE.
    async fn answer_call(&mut self, limit: Duration) -> Option<SipMsg>;
    /// Re-INVITEs with Chromium's offer in `direction`; the final status.
    async fn hold(&mut self, d: &mut Dialog, direction: &str) -> u16;
}

impl Browser for WsUa {
    async fn call(&mut self, target: &str) -> Dialog {
        self.invite(target, &chromium_offer(), CALL_LIMIT)
            .await
            .unwrap()
    }
    async fn start_call(&mut self, target: &str) -> Dialog {
        self.start_invite(target, &chromium_offer()).await.unwrap()
    }
    async fn finish_call(&mut self, d: Dialog) -> Dialog {
        self.finish_invite(d, CALL_LIMIT).await.unwrap()
    }
    async fn answer_call(&mut self, limit: Duration) -> Option<SipMsg> {
        self.answer_incoming(limit, &chromium_answer())
            .await
            .ok()
            .flatten()
    }
    async fn hold(&mut self, d: &mut Dialog, direction: &str) -> u16 {
        self.reinvite(d, &chromium_reoffer(direction))
            .await
            .unwrap()
    }
}
