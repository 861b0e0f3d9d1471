//! REGISTER towards the outbound proxy, and the rewrites every request from a WebSocket gets
//! (seed-system.md §2.1-2.2, RFC 7118 §5, RFC 3327).

use super::types::ConnName;
use crate::sip::hdr::{NameAddr, SipUri, Via};
use crate::sip::msg::SipMsg;

/// Adds `received=<conn>` to the top Via of a request that came over WebSocket conn `conn`
/// (RFC 3261 §18.2.1: the sent-by never matches the connection's name).
pub fn mark_received(msg: &mut SipMsg, conn: &ConnName) {
    let Some(top) = msg.headers.iter_mut().find(|h| h.name == "Via") else {
        return;
    };
    if let Ok(mut via) = Via::parse(&top.value) {
        if via.host != conn.0 {
            via.params.set("received", Some(&conn.0));
            top.value = via.to_string();
        }
    }
}

/// Rewrites the host of each Contact to the connection's name, keeping user and parameters, so
/// a registrar's binding (or a dialog's remote target) leads back to this connection. Only
/// when the request has exactly one Via (it comes straight from the browser).
pub fn rewrite_contact(msg: &mut SipMsg, conn: &ConnName) {
    if msg.headers_named("Via").count() != 1 {
        return;
    }
    for h in msg.headers.iter_mut().filter(|h| h.name == "Contact") {
        let Ok(mut na) = NameAddr::parse(&h.value, "Contact") else {
            continue;
        };
        let Some(mut uri) = SipUri::parse(&na.uri) else {
            continue;
        };
        uri.host = conn.0.clone();
        uri.port = None;
        na.uri = uri.to_string();
        h.value = na.to_string();
    }
}

/// Decrements Max-Forwards (70 when absent). False when it was already 0: answer 483.
#[must_use]
pub fn decrement_max_forwards(msg: &mut SipMsg) -> bool {
    let mf = msg
        .header("Max-Forwards")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(71);
    if mf == 0 {
        return false;
    }
    msg.set_header("Max-Forwards", (mf - 1).to_string());
    true
}

/// The REGISTER (or SUBSCRIBE) as it goes to the proxy: a new top Via for the gateway's SIP/UDP
/// socket and, for REGISTER, a Path so the registrar routes calls for the binding back here.
pub fn to_proxy(msg: &mut SipMsg, own_hostport: &str, branch: &str, add_path: bool) {
    msg.prepend_header(
        "Via",
        format!("SIP/2.0/UDP {own_hostport};rport;branch={branch}"),
    );
    if add_path {
        msg.prepend_header("Path", format!("<sip:{own_hostport};lr>"));
    }
}

/// Removes the gateway's own top Via from a response; `None` when the top Via is not ours.
pub fn pop_own_via(resp: &mut SipMsg, branch: &str) -> Option<()> {
    let i = resp.headers.iter().position(|h| h.name == "Via")?;
    let via = Via::parse(&resp.headers[i].value).ok()?;
    if via.branch() != Some(branch) {
        return None;
    }
    resp.headers.remove(i);
    Some(())
}

/// The lifetime a 2xx to REGISTER grants the Contacts that lead to `conn` (0 = none).
pub fn granted_expires(resp: &SipMsg, conn: &ConnName) -> u32 {
    let header_expires = resp.header("Expires").and_then(|e| e.parse().ok());
    resp.headers_named("Contact")
        .filter_map(|c| NameAddr::parse(c, "Contact").ok())
        .filter(|na| SipUri::parse(&na.uri).is_some_and(|u| u.host == conn.0))
        .map(|na| {
            na.params
                .value("expires")
                .and_then(|e| e.parse().ok())
                .or(header_expires)
                .unwrap_or(3600)
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = include_bytes!("../../tests/fixtures/sipjs/register.txt");

    fn conn() -> ConnName {
        ConnName("a34011be-da9c-42f7-aa21-8bcb596cb429.invalid".into())
    }

    #[test]
    fn sipjs_register_rewritten_for_the_proxy() {
        let mut m = SipMsg::parse(REGISTER).unwrap();
        let original_contact = NameAddr::parse(m.header("Contact").unwrap(), "Contact").unwrap();
        mark_received(&mut m, &conn());
        rewrite_contact(&mut m, &conn());
        assert!(decrement_max_forwards(&mut m));
        to_proxy(&mut m, "127.0.0.1:5060", "z9hG4bKgw1", true);
        let out = SipMsg::parse(&m.to_bytes()).unwrap();
        let vias: Vec<_> = out.headers_named("Via").collect();
        assert_eq!(vias.len(), 2);
        assert_eq!(
            vias[0],
            "SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKgw1"
        );
        assert!(
            vias[1].ends_with(&format!(";received={}", conn().0)),
            "{}",
            vias[1]
        );
        assert_eq!(out.header("Path"), Some("<sip:127.0.0.1:5060;lr>"));
        let c = NameAddr::parse(out.header("Contact").unwrap(), "Contact").unwrap();
        let u = SipUri::parse(&c.uri).unwrap();
        assert_eq!(u.host, conn().0);
        let orig = SipUri::parse(&original_contact.uri).unwrap();
        assert_eq!(u.user, orig.user, "user part kept");
        assert_eq!(u.params, orig.params, "transport=ws kept");
        assert_eq!(c.params, original_contact.params, "expires kept");
        assert_eq!(out.header("Max-Forwards"), Some("69"));
        assert_eq!(out.call_id(), SipMsg::parse(REGISTER).unwrap().call_id());
    }

    #[test]
    fn own_via_popped_and_expiry_read() {
        let mut m = SipMsg::parse(REGISTER).unwrap();
        rewrite_contact(&mut m, &conn());
        to_proxy(&mut m, "127.0.0.1:5060", "z9hG4bKgw1", true);
        let mut ok = m.response(200, "OK", Some("r"));
        ok.push_header("Contact", m.header("Contact").unwrap());
        assert!(pop_own_via(&mut ok.clone(), "z9hG4bKother").is_none());
        pop_own_via(&mut ok, "z9hG4bKgw1").unwrap();
        assert_eq!(ok.headers_named("Via").count(), 1);
        assert_eq!(granted_expires(&ok, &conn()), 600);
        assert_eq!(granted_expires(&ok, &ConnName("x.invalid".into())), 0);
    }

    #[test]
    fn max_forwards_zero_is_refused() {
        let mut m = SipMsg::parse(REGISTER).unwrap();
        m.set_header("Max-Forwards", "0");
        assert!(!decrement_max_forwards(&mut m));
    }
}
