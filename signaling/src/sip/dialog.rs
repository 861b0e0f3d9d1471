//! A dialog (RFC 3261 §12): the state two user agents share for the life of a call, from one
//! side's point of view. Pure: it builds requests and reads responses, it sends nothing.

use super::hdr::NameAddr;
use super::msg::{Method, SipMsg, StartLine};
use super::names::{CallId, Tag};

/// Where a dialog stands (RFC 3261 §12: early until a 2xx, then confirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Formed by a provisional response with a To-tag, or not yet formed (no remote tag).
    Early,
    /// A 2xx formed or confirmed it.
    Confirmed,
    /// A BYE was sent or received, or the INVITE failed.
    Terminated,
}

/// One side's view of a dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub state: DialogState,
    pub call_id: CallId,
    pub local_tag: Tag,
    /// `None` until the far end's tag is known (an INVITE we sent, not yet answered).
    pub remote_tag: Option<Tag>,
    /// Our name-addr without tag: From of the requests we send.
    pub local_uri: String,
    /// The far end's name-addr without tag: To of the requests we send.
    pub remote_uri: String,
    /// Request-URI of in-dialog requests (the far end's Contact).
    pub remote_target: String,
    /// Route headers of in-dialog requests, in the order they are sent.
    pub route_set: Vec<String>,
    pub local_cseq: u32,
    pub remote_cseq: u32,
}

impl Dialog {
    /// A request of this dialog with the next-but-given CSeq (RFC 3261 §12.2.1.1).
    pub fn request(&self, method: Method, via: String, cseq: u32) -> SipMsg {
        let mut m = SipMsg {
            start: StartLine::Request {
                method: method.clone(),
                uri: self.remote_target.clone(),
            },
            headers: Vec::new(),
            body: Vec::new(),
        };
        m.push_header("Via", via);
        m.push_header("Max-Forwards", "70");
        m.push_header("From", format!("{};tag={}", self.local_uri, self.local_tag));
        let to = match &self.remote_tag {
            Some(t) => format!("{};tag={t}", self.remote_uri),
            None => self.remote_uri.clone(),
        };
        m.push_header("To", to);
        m.push_header("Call-ID", self.call_id.to_string());
        m.push_header("CSeq", format!("{cseq} {method}"));
        for r in &self.route_set {
            m.push_header("Route", r.clone());
        }
        m
    }

    /// The next request of this dialog: CSeq one more than the last (RFC 3261 §12.2.1.1).
    pub fn next_request(&mut self, method: Method, via: String) -> SipMsg {
        self.local_cseq += 1;
        self.request(method, via, self.local_cseq)
    }

    /// A response to a request we sent on this dialog (RFC 3261 §12.1.2, §13.2.2.4): the
    /// remote tag (the first one, or the 2xx's), the remote target from its Contact, and the
    /// route set from its Record-Route (reversed for a UAC unless `keep_order`). A 2xx
    /// confirms the dialog.
    pub fn update_from_response(&mut self, resp: &SipMsg, keep_order: bool) {
        let code = resp.status().unwrap_or(0);
        if self.remote_tag.is_none() || (200..300).contains(&code) {
            if let Some(tag) = resp.to_hdr().and_then(|t| t.tag().map(Tag::from)) {
                self.remote_tag = Some(tag);
            }
        }
        if (101..300).contains(&code) {
            if let Some(t) = contact_uri(resp) {
                self.remote_target = t;
            }
            let mut rr: Vec<String> = resp
                .headers_named("Record-Route")
                .map(str::to_string)
                .collect();
            if !keep_order {
                rr.reverse();
            }
            if !rr.is_empty() {
                self.route_set = rr;
            }
        }
        if (200..300).contains(&code) {
            self.state = DialogState::Confirmed;
        }
    }

    /// An in-dialog request from the far end: `Err(())` when its CSeq went backwards (RFC
    /// 3261 §12.2.2: 500). ACK and CANCEL carry the INVITE's CSeq and are not counted.
    #[allow(clippy::result_unit_err)]
    pub fn take_request(&mut self, msg: &SipMsg) -> Result<(), ()> {
        let method = msg.method();
        if matches!(method, Some(Method::Ack) | Some(Method::Cancel)) {
            return Ok(());
        }
        let seq = msg.cseq().seq;
        if seq < self.remote_cseq {
            return Err(());
        }
        self.remote_cseq = seq;
        Ok(())
    }
}

/// The URI of a message's Contact.
pub fn contact_uri(msg: &SipMsg) -> Option<String> {
    NameAddr::parse(msg.header("Contact")?, "Contact")
        .ok()
        .map(|n| n.uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            state: DialogState::Early,
            call_id: "c1".into(),
            local_tag: "l1".into(),
            remote_tag: None,
            local_uri: "<sip:a@gw>".into(),
            remote_uri: "<sip:b@pbx>".into(),
            remote_target: "sip:b@pbx".into(),
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: 0,
        }
    }

    fn response(code: u16, tag: &str, extra: &str) -> SipMsg {
        let text = format!(
            "SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP gw;branch=z9hG4bK1\r\nFrom: <sip:a@gw>;tag=l1\r\n\
             To: <sip:b@pbx>;tag={tag}\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMsg::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn a_2xx_confirms_with_its_tag_target_and_reversed_route_set() {
        let mut d = dialog();
        d.update_from_response(
            &response(180, "early", "Contact: <sip:b@10.0.0.1>\r\n"),
            false,
        );
        assert_eq!(d.state, DialogState::Early);
        assert_eq!(d.remote_tag, Some(Tag::from("early")));
        d.update_from_response(
            &response(
                200,
                "final",
                "Contact: <sip:b@10.0.0.2>\r\nRecord-Route: <sip:p1;lr>\r\nRecord-Route: <sip:p2;lr>\r\n",
            ),
            false,
        );
        assert_eq!(d.state, DialogState::Confirmed);
        assert_eq!(d.remote_tag, Some(Tag::from("final")));
        assert_eq!(d.remote_target, "sip:b@10.0.0.2");
        assert_eq!(d.route_set, vec!["<sip:p2;lr>", "<sip:p1;lr>"]);
        let bye = d.next_request(Method::Bye, "SIP/2.0/UDP gw;branch=z9hG4bK2".into());
        assert_eq!(bye.cseq().seq, 2);
        assert_eq!(bye.header("To"), Some("<sip:b@pbx>;tag=final"));
        assert_eq!(bye.headers_named("Route").count(), 2);
    }

    #[test]
    fn a_request_whose_cseq_goes_back_is_refused() {
        let mut d = dialog();
        let req = |seq: u32, m: &str| {
            SipMsg::parse(
                format!(
                    "{m} sip:a@gw SIP/2.0\r\nVia: SIP/2.0/UDP pbx;branch=z9hG4bK{seq}\r\n\
                     From: <sip:b@pbx>;tag=r\r\nTo: <sip:a@gw>;tag=l1\r\nCall-ID: c1\r\n\
                     CSeq: {seq} {m}\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(d.take_request(&req(5, "INFO")), Ok(()));
        assert_eq!(d.take_request(&req(4, "INFO")), Err(()));
        assert_eq!(d.take_request(&req(1, "ACK")), Ok(()));
        assert_eq!(d.remote_cseq, 5);
    }
}
