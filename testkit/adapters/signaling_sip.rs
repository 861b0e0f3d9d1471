//! The gateway's SIP stack (`signaling::sip`) as the kit's [`testkit::sipua::SipStack`], so the
//! one WSS UA parses and answers with it.
//!
//! Not part of the testkit build (the kit depends on no workspace crate): the crates that have
//! both `signaling` and `testkit` include this one file as a module, `bench/src/ua.rs` and
//! `signaling/tests/common/sipua.rs` (`#[path]`).

use signaling::sip::hdr::{split_list, NameAddr};
use signaling::sip::msg::SipMsg;

/// `signaling::sip` behind the kit's UA.
#[derive(Debug)]
pub struct SignalingSip;

impl testkit::sipua::SipStack for SignalingSip {
    type Msg = SipMsg;

    fn parse(bytes: &[u8]) -> Option<SipMsg> {
        SipMsg::parse(bytes).ok()
    }
    fn to_text(m: &SipMsg) -> String {
        String::from_utf8_lossy(&m.to_bytes()).into_owned()
    }
    fn call_id(m: &SipMsg) -> &str {
        m.call_id()
    }
    fn status(m: &SipMsg) -> Option<u16> {
        m.status()
    }
    fn method(m: &SipMsg) -> Option<&str> {
        m.method().map(|x| x.as_str())
    }
    fn cseq_method(m: &SipMsg) -> String {
        m.cseq().method.as_str().to_string()
    }
    fn header<'a>(m: &'a SipMsg, name: &str) -> Option<&'a str> {
        m.header(name)
    }
    fn header_list(m: &SipMsg, name: &str) -> Vec<String> {
        m.headers_named(name)
            .flat_map(split_list)
            .map(|s| s.trim().to_string())
            .collect()
    }
    fn body(m: &SipMsg) -> &[u8] {
        &m.body
    }
    fn response(
        req: &SipMsg,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: &[u8],
    ) -> SipMsg {
        let mut r = req.response(code, reason, to_tag);
        for (name, value) in extra {
            r.push_header(name, value.clone());
        }
        r.body = body.to_vec();
        r
    }
    fn uri_of(value: &str) -> Option<String> {
        NameAddr::parse(value, "Contact").ok().map(|c| c.uri)
    }
    fn digest(
        challenge: &str,
        method: &str,
        uri: &str,
        user: &str,
        pass: &str,
        cnonce: &str,
    ) -> Option<String> {
        signaling::sip::digest::answer(challenge, method, uri, user, pass, cnonce)
    }
}
