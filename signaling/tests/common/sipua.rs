//! A WebSocket SIP user agent that plays the browser's SIP role with SIP.js's own message
//! shapes (tests/fixtures/sipjs): REGISTER with digest, INVITE with Chromium's SDP offer,
//! 401/407 retries, ACK, BYE, CANCEL, re-INVITE, and answering calls with Chromium's answer.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use signaling::sip::hdr::NameAddr;
use signaling::sip::msg::{Method, SipMsg};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::tls_connect_from;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

const INVITE: &[u8] = include_bytes!("../fixtures/sipjs/invite.txt");
const ANSWER: &[u8] = include_bytes!("../fixtures/sipjs/callee-200-ok-sdp-answer.txt");

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

fn md5_hex(s: &str) -> String {
    openssl::hash::hash(openssl::hash::MessageDigest::md5(), s.as_bytes())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    challenge.split(',').find_map(|p| {
        let p = p.trim().trim_start_matches("Digest ").trim();
        let (k, v) = p.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// RFC 2617 digest (MD5, qop=auth) for a challenge header value.
pub fn digest(method: &str, uri: &str, user: &str, pass: &str, challenge: &str) -> String {
    let realm = param(challenge, "realm").unwrap_or_default();
    let nonce = param(challenge, "nonce").unwrap_or_default();
    let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let cnonce = "0a4f113b";
    let nc = "00000001";
    let resp = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let mut h = format!(
        "Digest algorithm=MD5, username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{resp}\", qop=auth, cnonce=\"{cnonce}\", nc={nc}"
    );
    if let Some(o) = param(challenge, "opaque") {
        h.push_str(&format!(", opaque=\"{o}\""));
    }
    h
}

/// An established (or attempted) call from the UA's point of view.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    /// The remote party's To (with tag) as our From/To on requests.
    pub remote: String,
    pub local: String,
    pub target: String,
    pub cseq: u32,
    pub final_status: u16,
    pub answer_sdp: String,
}

pub struct WsUa {
    ws: Ws,
    pub user: String,
    pub pass: String,
    pub domain: String,
    token: String,
    n: u32,
    /// Messages received but not yet consumed.
    pub inbox: Vec<SipMsg>,
}

impl WsUa {
    pub async fn connect(port: u16, user: &str, pass: &str, domain: &str) -> WsUa {
        Self::connect_from("127.0.0.1", port, user, pass, domain).await
    }

    /// As [`WsUa::connect`], from the loopback address `src`.
    pub async fn connect_from(src: &str, port: u16, user: &str, pass: &str, domain: &str) -> WsUa {
        let tls = tls_connect_from(src.parse().expect("an IP address"), port).await;
        let mut req = format!("wss://127.0.0.1:{port}/ws")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse().unwrap());
        let (ws, _) = tokio_tungstenite::client_async(req, tls).await.unwrap();
        WsUa {
            ws,
            user: user.into(),
            pass: pass.into(),
            domain: domain.into(),
            token: format!("{user}tok"),
            n: 0,
            inbox: Vec::new(),
        }
    }

    fn next(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    fn via(&mut self) -> String {
        let n = self.next();
        format!(
            "SIP/2.0/WSS {}.invalid;branch=z9hG4bK{}{n}",
            self.token, self.user
        )
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}.invalid;transport=ws>", self.token, self.token)
    }

    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// Drops the TCP connection without a WebSocket close (a crashed or closed browser tab).
    pub fn abort(self) {
        drop(self.ws);
    }

    /// The next SIP message matching `pred`, within `limit`; others are kept in the inbox.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        pred: impl Fn(&SipMsg) -> bool,
    ) -> Option<SipMsg> {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return Some(self.inbox.remove(i));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            let Ok(Message::Text(t)) = msg else { continue };
            let Ok(m) = SipMsg::parse(t.as_bytes()) else {
                continue;
            };
            if pred(&m) {
                return Some(m);
            }
            self.inbox.push(m);
        }
    }

    /// A final response (≥ 200) to `method` of `call_id`.
    pub async fn final_response(
        &mut self,
        call_id: &str,
        method: Method,
        limit: Duration,
    ) -> Option<SipMsg> {
        let cid = call_id.to_string();
        self.wait_for(limit, move |m| {
            m.call_id() == cid && m.status().is_some_and(|s| s >= 200) && m.cseq().method == method
        })
        .await
    }

    /// REGISTER, answering one 401 with digest. Returns the final status.
    pub async fn register(&mut self, expires: u32) -> u16 {
        let n = self.next();
        let call_id = format!("reg-{}-{n}", self.user);
        let mut auth: Option<String> = None;
        for cseq in 1..=2 {
            let via = self.via();
            let uri = format!("sip:{}", self.domain);
            let mut m = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: <sip:{u}@{d}>\r\n\
                 From: <sip:{u}@{d}>;tag=reg{u}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: {c};expires={expires}\r\nExpires: {expires}\r\nAllow: ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER\r\n\
                 Supported: outbound, path, gruu\r\nUser-Agent: SIP.js/0.21.1\r\n",
                u = self.user,
                d = self.domain,
                c = self.contact()
            );
            if let Some(a) = &auth {
                m.push_str(&format!("Authorization: {a}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            self.send(&m).await;
            let Some(r) = self
                .final_response(&call_id, Method::Register, Duration::from_secs(10))
                .await
            else {
                return 0;
            };
            let code = r.status().unwrap();
            if code == 401 && auth.is_none() {
                let ch = r.header("WWW-Authenticate").unwrap().to_string();
                auth = Some(digest(
                    "REGISTER",
                    &uri,
                    &self.user.clone(),
                    &self.pass.clone(),
                    &ch,
                ));
                continue;
            }
            return code;
        }
        0
    }

    /// Sends an INVITE to `target` with Chromium's offer; answers 401/407 once with digest.
    /// Returns the dialog after the final response (ACKing a 2xx).
    pub async fn call(&mut self, target: &str) -> Dialog {
        let d = self.start_call(target).await;
        self.finish_call(d).await
    }

    /// Sends the INVITE and returns at once (for CANCEL tests).
    pub async fn start_call(&mut self, target: &str) -> Dialog {
        let d = self.new_dialog(target);
        self.send_invite(&d, None).await;
        d
    }

    /// A fresh dialog towards `target`, nothing sent (see [`WsUa::invite_text`]).
    pub fn new_dialog(&mut self, target: &str) -> Dialog {
        let n = self.next();
        let call_id = format!("call-{}-{n}", self.user);
        let tag = format!("t{}", self.next());
        Dialog {
            call_id,
            local_tag: tag,
            remote: format!("<{target}>"),
            local: format!("<sip:{}@{}>", self.user, self.domain),
            target: target.to_string(),
            cseq: 1,
            final_status: 0,
            answer_sdp: String::new(),
        }
    }

    /// The INVITE of `d` as SIP.js writes it, for tests that edit it before sending.
    pub fn invite_text(&mut self, d: &Dialog, auth: Option<(&str, String)>, sdp: &str) -> String {
        let via = self.via();
        let mut m = format!(
            "INVITE {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\n\
             Call-ID: {}\r\nCSeq: {} INVITE\r\nContact: {}\r\nAllow: ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER\r\n\
             Supported: outbound\r\nUser-Agent: SIP.js/0.21.1\r\nContent-Type: application/sdp\r\n",
            d.target,
            d.remote,
            d.local,
            d.local_tag,
            d.call_id,
            d.cseq,
            self.contact()
        );
        if let Some((name, value)) = auth {
            m.push_str(&format!("{name}: {value}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        m
    }

    async fn send_invite(&mut self, d: &Dialog, auth: Option<(&str, String)>) {
        let text = self.invite_text(d, auth, &chromium_offer());
        self.send(&text).await;
    }

    /// The CANCEL for the pending INVITE of `d` (same branch as the last INVITE sent).
    pub async fn cancel(&mut self, d: &Dialog) {
        let via = format!(
            "SIP/2.0/WSS {}.invalid;branch=z9hG4bK{}{}",
            self.token, self.user, self.n
        );
        let m = format!(
            "CANCEL {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            d.target, d.remote, d.local, d.local_tag, d.call_id, d.cseq
        );
        self.send(&m).await;
    }

    pub async fn finish_call(&mut self, mut d: Dialog) -> Dialog {
        let mut challenged = false;
        loop {
            let Some(r) = self
                .final_response(&d.call_id, Method::Invite, Duration::from_secs(15))
                .await
            else {
                return d;
            };
            let code = r.status().unwrap();
            d.final_status = code;
            if (code == 401 || code == 407) && !challenged {
                challenged = true;
                self.ack_non_2xx(&d, &r).await;
                let (hdr, resp_hdr) = if code == 401 {
                    ("WWW-Authenticate", "Authorization")
                } else {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                };
                let ch = r.header(hdr).unwrap().to_string();
                let a = digest(
                    "INVITE",
                    &d.target.clone(),
                    &self.user.clone(),
                    &self.pass.clone(),
                    &ch,
                );
                d.cseq += 1;
                self.send_invite(&d, Some((resp_hdr, a))).await;
                continue;
            }
            if code >= 300 {
                self.ack_non_2xx(&d, &r).await;
                return d;
            }
            d.remote = r.header("To").unwrap().to_string();
            if let Some(c) = r
                .header("Contact")
                .and_then(|c| NameAddr::parse(c, "Contact").ok())
            {
                d.target = c.uri;
            }
            d.answer_sdp = String::from_utf8_lossy(&r.body).into_owned();
            let ack = self.in_dialog(&d, "ACK", d.cseq, "");
            self.send(&ack).await;
            return d;
        }
    }

    async fn ack_non_2xx(&mut self, d: &Dialog, r: &SipMsg) {
        let via = r.header("Via").unwrap().to_string();
        let m = format!(
            "ACK {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            d.target,
            r.header("To").unwrap(),
            d.local,
            d.local_tag,
            d.call_id,
            d.cseq
        );
        self.send(&m).await;
    }

    /// An in-dialog request of `d` (the caller is responsible for CSeq).
    pub fn in_dialog(&mut self, d: &Dialog, method: &str, cseq: u32, sdp: &str) -> String {
        let via = self.via();
        let ct = if sdp.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: {}\r\n{ct}Content-Length: {}\r\n\r\n{sdp}",
            d.target,
            d.remote,
            d.local,
            d.local_tag,
            d.call_id,
            self.contact(),
            sdp.len()
        )
    }

    /// BYE; returns the final status.
    pub async fn bye(&mut self, d: &mut Dialog) -> u16 {
        d.cseq += 1;
        let m = self.in_dialog(d, "BYE", d.cseq, "");
        self.send(&m).await;
        self.final_response(&d.call_id.clone(), Method::Bye, Duration::from_secs(10))
            .await
            .and_then(|r| r.status())
            .unwrap_or(0)
    }

    /// re-INVITE with Chromium's offer changed to `direction` (hold: sendonly); ACKs a 2xx.
    pub async fn reinvite(&mut self, d: &mut Dialog, direction: &str) -> u16 {
        d.cseq += 1;
        let sdp = chromium_offer()
            .replace("a=sendrecv", &format!("a={direction}"))
            .replace(" 2 IN IP4", " 3 IN IP4");
        let m = self.in_dialog(d, "INVITE", d.cseq, &sdp);
        self.send(&m).await;
        let Some(r) = self
            .final_response(&d.call_id.clone(), Method::Invite, Duration::from_secs(10))
            .await
        else {
            return 0;
        };
        let code = r.status().unwrap();
        if code < 300 {
            d.answer_sdp = String::from_utf8_lossy(&r.body).into_owned();
            let ack = self.in_dialog(d, "ACK", d.cseq, "");
            self.send(&ack).await;
        }
        code
    }

    /// Answers requests of an incoming call as SIP.js does: 100 and 180 to the INVITE, then
    /// 200 with Chromium's answer. Returns the INVITE.
    pub async fn answer_incoming(&mut self, limit: Duration) -> Option<SipMsg> {
        let inv = self
            .wait_for(limit, |m| m.method() == Some(&Method::Invite))
            .await?;
        let tag = format!("callee{}", self.next());
        for (code, reason) in [(100, "Trying"), (180, "Ringing")] {
            let r = inv.response(code, reason, Some(&tag));
            self.send(&String::from_utf8(r.to_bytes()).unwrap()).await;
        }
        let mut ok = inv.response(200, "OK", Some(&tag));
        ok.push_header("Contact", self.contact());
        ok.push_header("Content-Type", "application/sdp");
        ok.body = chromium_answer().into_bytes();
        self.send(&String::from_utf8(ok.to_bytes()).unwrap()).await;
        Some(inv)
    }

    /// Answers an in-dialog request (BYE, INFO, re-INVITE without SDP change) with 200.
    pub async fn answer_request(&mut self, method: Method, limit: Duration) -> Option<SipMsg> {
        let req = self
            .wait_for(limit, move |m| m.method() == Some(&method))
            .await?;
        let ok = req.response(200, "OK", None);
        self.send(&String::from_utf8(ok.to_bytes()).unwrap()).await;
        Some(req)
    }
}
