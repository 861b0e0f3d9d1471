//! One browser's SIP side: a WebSocket (RFC 7118) over TLS to the gateway, messages shaped as
//! SIP.js writes them (REGISTER with digest, INVITE with 401/407 retry, ACK, BYE, CANCEL,
//! re-INVITE, answering calls). IO only at the socket; every wait is bounded.
//!
//! The kit depends on no crate of the workspace, so the SIP message type, its parser and the
//! digest come from the user through [`SipStack`] (the gateway's own, in
//! `testkit/adapters/signaling_sip.rs`). Errors are for a failed connection; a missing answer
//! is a value (`None`, status 0).

#![allow(
    clippy::disallowed_methods,
    reason = "a test client: it connects and bounds its waits by the real clock"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// What the UA needs of a SIP stack: parse, read headers, build a response, answer a digest
/// challenge.
pub trait SipStack {
    /// A parsed SIP message.
    type Msg;
    /// Parses one message; `None` when it is not SIP.
    fn parse(bytes: &[u8]) -> Option<Self::Msg>;
    /// The serialized message.
    fn to_text(m: &Self::Msg) -> String;
    fn call_id(m: &Self::Msg) -> &str;
    /// The status code of a response.
    fn status(m: &Self::Msg) -> Option<u16>;
    /// The method of a request, as written.
    fn method(m: &Self::Msg) -> Option<&str>;
    /// The method in CSeq.
    fn cseq_method(m: &Self::Msg) -> String;
    /// The first value of header `name`.
    fn header<'a>(m: &'a Self::Msg, name: &str) -> Option<&'a str>;
    /// Every value of header `name`, comma lists split, in order.
    fn header_list(m: &Self::Msg, name: &str) -> Vec<String>;
    fn body(m: &Self::Msg) -> &[u8];
    /// The response to `req` (RFC 3261 §8.2.6.2: Via, From, To with `to_tag`, Call-ID, CSeq)
    /// with `extra` headers after those and `body`.
    fn response(
        req: &Self::Msg,
        code: u16,
        reason: &str,
        to_tag: Option<&str>,
        extra: &[(&str, String)],
        body: &[u8],
    ) -> Self::Msg;
    /// The URI of a name-addr header value (Contact).
    fn uri_of(value: &str) -> Option<String>;
    /// The Authorization value answering digest `challenge` (RFC 2617).
    fn digest(
        challenge: &str,
        method: &str,
        uri: &str,
        user: &str,
        pass: &str,
        cnonce: &str,
    ) -> Option<String>;
}

/// Who the UA is and how it behaves.
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// SIP user of the AOR.
    pub user: String,
    /// Password for digest challenges.
    pub pass: String,
    /// Domain of the AOR.
    pub domain: String,
    /// Unique per UA: the Contact's host, the Via's host, and part of Call-IDs and tags.
    pub token: String,
    /// The User-Agent header.
    pub user_agent: String,
    /// Answer OPTIONS, INFO and NOTIFY nobody waits for with 200 (the load generator) rather
    /// than keeping them in the inbox (tests that wait for them).
    pub answer_strays: bool,
}

impl UaConfig {
    /// A UA for `user` in `domain`, SIP.js's User-Agent, strays kept; token `{user}tok`.
    pub fn new(user: &str, pass: &str, domain: &str) -> Self {
        UaConfig {
            user: user.into(),
            pass: pass.into(),
            domain: domain.into(),
            token: format!("{user}tok"),
            user_agent: "SIP.js/0.21.1".into(),
            answer_strays: false,
        }
    }
}

/// An INVITE dialog from the UA's side.
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// Our From (caller) or To (callee) without tag.
    pub local: String,
    /// The far end's header value (with its tag once answered).
    pub remote: String,
    /// Request-URI for in-dialog requests (the far end's Contact once answered).
    pub target: String,
    /// Route set (from Record-Route), in order for our requests.
    pub route: Vec<String>,
    /// CSeq of our last request.
    pub cseq: u32,
    /// The Via of our last INVITE (a CANCEL repeats it, RFC 3261 §9.1).
    pub invite_via: String,
    /// The SDP our INVITE carried (sent again after a challenge).
    pub offer: String,
    /// The final status of our last INVITE (0: none came in time).
    pub final_status: u16,
    /// The SDP of the 2xx to our last INVITE.
    pub answer_sdp: String,
}

/// One UA on one WebSocket connection.
pub struct Ua<S: SipStack> {
    ws: Ws,
    /// SIP user.
    pub user: String,
    /// Password for digest challenges.
    pub pass: String,
    /// Domain of our AOR.
    pub domain: String,
    token: String,
    user_agent: String,
    answer_strays: bool,
    n: u64,
    /// Messages received but not yet waited for.
    pub inbox: Vec<S::Msg>,
}

impl<S: SipStack> std::fmt::Debug for Ua<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ua").field("user", &self.user).finish()
    }
}

const ALLOW: &str = "ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER";

impl<S: SipStack> Ua<S> {
    /// TLS over `tcp` (any certificate, name `localhost`), then the WebSocket upgrade to
    /// `url` with the `sip` subprotocol.
    pub async fn connect(
        tls: Arc<rustls::ClientConfig>,
        tcp: TcpStream,
        url: &str,
        cfg: UaConfig,
    ) -> anyhow::Result<Self> {
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(ServerName::try_from("localhost")?, tcp)
            .await
            .context("TLS handshake")?;
        let mut req = url.into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse()?);
        // tungstenite zero-fills `read_buffer_size` bytes of its read buffer on every poll; the
        // load generator polls the socket on every media packet, so keep it small (it grows).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096);
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, Some(config))
            .await
            .context("WebSocket upgrade")?;
        Ok(Ua {
            ws,
            user: cfg.user,
            pass: cfg.pass,
            domain: cfg.domain,
            token: cfg.token,
            user_agent: cfg.user_agent,
            answer_strays: cfg.answer_strays,
            n: 0,
            inbox: Vec::new(),
        })
    }

    /// [`Ua::connect`] over a fresh TCP connection to `addr`, URL `wss://{addr}{path}`.
    pub async fn connect_to(
        tls: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
        path: &str,
        cfg: UaConfig,
    ) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
        Self::connect(tls, tcp, &format!("wss://{addr}{path}"), cfg).await
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        self.n
    }

    fn via(&mut self) -> String {
        let n = self.next();
        format!(
            "SIP/2.0/WSS {}.invalid;branch=z9hG4bK{}x{n}",
            self.token, self.token
        )
    }

    /// Our Contact, as SIP.js writes it.
    pub fn contact(&self) -> String {
        format!("<sip:{}@{}.invalid;transport=ws>", self.token, self.token)
    }

    /// Sends one SIP message (or any text).
    pub async fn send(&mut self, text: impl Into<String>) -> anyhow::Result<()> {
        self.ws
            .send(Message::Text(text.into().into()))
            .await
            .context("WebSocket send")
    }

    /// Sends `m` serialized.
    pub async fn send_msg(&mut self, m: &S::Msg) -> anyhow::Result<()> {
        self.send(S::to_text(m)).await
    }

    /// Closes the WebSocket (bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// Drops the TCP connection without a WebSocket close (a crashed or closed browser tab).
    pub fn abort(self) {
        drop(self.ws);
    }

    /// The next message from the socket (not the inbox), within `limit`; `Ok(None)` on
    /// timeout, an error when the connection closed or the gateway sent something unparsable.
    pub async fn recv(&mut self, limit: Duration) -> anyhow::Result<Option<S::Msg>> {
        match tokio::time::timeout(limit, self.next_msg()).await {
            Err(_) => Ok(None),
            Ok(r) => r.map(Some),
        }
    }

    /// The next message from the socket (not the inbox), however long it takes: no timer, so
    /// a load generator can poll it beside its media on every turn of a loop at no cost.
    /// Cancel-safe (a partly read frame stays in the WebSocket stream).
    pub async fn next_msg(&mut self) -> anyhow::Result<S::Msg> {
        loop {
            let msg = match self.ws.next().await {
                None => bail!("WebSocket closed by the gateway"),
                Some(Err(e)) => bail!("WebSocket: {e}"),
                Some(Ok(m)) => m,
            };
            let bytes = match &msg {
                Message::Text(t) => t.as_bytes(),
                Message::Binary(b) => &b[..],
                Message::Close(_) => bail!("WebSocket closed by the gateway"),
                _ => continue,
            };
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue; // keep-alive CRLF
            }
            match S::parse(bytes) {
                Some(m) => return Ok(m),
                None => bail!(
                    "unparsable SIP from the gateway: {:?}",
                    String::from_utf8_lossy(bytes)
                ),
            }
        }
    }

    /// The next message matching `pred` within `limit`: from the inbox first, then the socket
    /// (others go to the inbox, or are answered: [`Ua::answer_stray`]). `Ok(None)` on timeout.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        pred: impl Fn(&S::Msg) -> bool,
    ) -> anyhow::Result<Option<S::Msg>> {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return Ok(Some(self.inbox.remove(i)));
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(m) = self.recv(left).await? else {
                return Ok(None);
            };
            if pred(&m) {
                return Ok(Some(m));
            }
            self.answer_stray(m).await?;
        }
    }

    /// A message nobody waits for: OPTIONS, INFO and NOTIFY are answered 200 when the UA
    /// answers strays; everything else is kept in the inbox (bounded).
    pub async fn answer_stray(&mut self, m: S::Msg) -> anyhow::Result<()> {
        let stray = matches!(S::method(&m), Some("OPTIONS" | "INFO" | "NOTIFY"));
        if self.answer_strays && stray {
            let r = S::response(&m, 200, "OK", None, &[], b"");
            return self.send_msg(&r).await;
        }
        if self.inbox.len() < 256 {
            self.inbox.push(m);
        }
        Ok(())
    }

    /// A final response (≥ 200) to `method` of `call_id` within `limit`.
    pub async fn final_response(
        &mut self,
        call_id: &str,
        method: &str,
        limit: Duration,
    ) -> anyhow::Result<Option<S::Msg>> {
        self.wait_for(limit, |m| {
            S::call_id(m) == call_id
                && S::status(m).is_some_and(|s| s >= 200)
                && S::cseq_method(m) == method
        })
        .await
    }

    /// The (header, value) answering the 401/407 `r` for `method` on `uri`.
    fn challenge_answer(
        &mut self,
        r: &S::Msg,
        method: &str,
        uri: &str,
    ) -> anyhow::Result<(&'static str, String)> {
        let (ch_name, resp_name) = if S::status(r) == Some(401) {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let ch = S::header(r, ch_name)
            .ok_or_else(|| anyhow!("{} without {ch_name}", S::status(r).unwrap_or(0)))?;
        let cnonce = format!("{:08x}", self.next());
        let value = S::digest(ch, method, uri, &self.user, &self.pass, &cnonce)
            .ok_or_else(|| anyhow!("unsupported challenge: {ch}"))?;
        Ok((resp_name, value))
    }

    /// REGISTER, answering one 401/407 with digest; the final status (0: none within 10 s).
    pub async fn register(&mut self, expires: u32) -> anyhow::Result<u16> {
        let n = self.next();
        let call_id = format!("reg-{}-{n}", self.token);
        let uri = format!("sip:{}", self.domain);
        let mut auth: Option<(&'static str, String)> = None;
        for cseq in 1..=2 {
            let via = self.via();
            let mut m = format!(
                "REGISTER {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: <sip:{u}@{d}>\r\n\
                 From: <sip:{u}@{d}>;tag=r{t}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n\
                 Contact: {c};expires={expires}\r\nExpires: {expires}\r\nAllow: {ALLOW}\r\n\
                 Supported: path, gruu, outbound\r\nUser-Agent: {ua}\r\n",
                u = self.user,
                d = self.domain,
                t = self.token,
                c = self.contact(),
                ua = self.user_agent,
            );
            if let Some((name, value)) = &auth {
                m.push_str(&format!("{name}: {value}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            self.send(m).await?;
            let Some(r) = self
                .final_response(&call_id, "REGISTER", Duration::from_secs(10))
                .await?
            else {
                return Ok(0);
            };
            let code = S::status(&r).unwrap_or(0);
            if (code == 401 || code == 407) && auth.is_none() {
                auth = Some(self.challenge_answer(&r, "REGISTER", &uri)?);
                continue;
            }
            return Ok(code);
        }
        bail!("REGISTER: challenged twice")
    }

    /// A fresh dialog towards `target`; nothing sent.
    pub fn new_dialog(&mut self, target: &str) -> Dialog {
        let n = self.next();
        Dialog {
            call_id: format!("call-{}-{n}", self.token),
            local_tag: format!("t{}{n}", self.token),
            local: format!("<sip:{}@{}>", self.user, self.domain),
            remote: format!("<{target}>"),
            target: target.to_string(),
            cseq: 1,
            ..Dialog::default()
        }
    }

    /// The INVITE of `d` with `sdp` as SIP.js writes it (for tests that edit it before
    /// sending); remembers its Via and SDP in `d`.
    pub fn invite_text(
        &mut self,
        d: &mut Dialog,
        auth: Option<(&str, String)>,
        sdp: &str,
    ) -> String {
        let via = self.via();
        let mut m = format!(
            "INVITE {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\n\
             Call-ID: {}\r\nCSeq: {} INVITE\r\nContact: {}\r\nAllow: {ALLOW}\r\n\
             Supported: outbound\r\nUser-Agent: {}\r\nContent-Type: application/sdp\r\n",
            d.target,
            d.remote,
            d.local,
            d.local_tag,
            d.call_id,
            d.cseq,
            self.contact(),
            self.user_agent,
        );
        if let Some((name, value)) = auth {
            m.push_str(&format!("{name}: {value}\r\n"));
        }
        m.push_str(&format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        d.invite_via = via;
        d.offer = sdp.to_string();
        m
    }

    /// Sends an INVITE to `target` with `sdp` and returns at once (see [`Ua::finish_invite`]).
    pub async fn start_invite(&mut self, target: &str, sdp: &str) -> anyhow::Result<Dialog> {
        let mut d = self.new_dialog(target);
        let text = self.invite_text(&mut d, None, sdp);
        self.send(text).await?;
        Ok(d)
    }

    /// Waits (up to `limit` for each) for the final response to the INVITE of `d`, answering
    /// one 401/407 with digest; ACKs it. `final_status` says how it ended (0: no final response
    /// in time); on a 2xx the dialog has the far end's tag, Contact, route set and SDP.
    pub async fn finish_invite(
        &mut self,
        mut d: Dialog,
        limit: Duration,
    ) -> anyhow::Result<Dialog> {
        let mut challenged = false;
        loop {
            let Some(r) = self.final_response(&d.call_id, "INVITE", limit).await? else {
                d.final_status = 0;
                return Ok(d);
            };
            let code = S::status(&r).unwrap_or(0);
            d.final_status = code;
            if code >= 300 {
                self.ack_non_2xx(&d, &r).await?;
                if (code == 401 || code == 407) && !challenged {
                    challenged = true;
                    let target = d.target.clone();
                    let auth = self.challenge_answer(&r, "INVITE", &target)?;
                    d.cseq += 1;
                    let offer = d.offer.clone();
                    let text = self.invite_text(&mut d, Some(auth), &offer);
                    self.send(text).await?;
                    continue;
                }
                return Ok(d);
            }
            d.remote = S::header(&r, "To").unwrap_or_default().to_string();
            if let Some(uri) = S::header(&r, "Contact").and_then(S::uri_of) {
                d.target = uri;
            }
            let mut rr: Vec<String> = S::header_list(&r, "Record-Route");
            rr.reverse();
            d.route = rr;
            d.answer_sdp = String::from_utf8_lossy(S::body(&r)).into_owned();
            let ack = self.in_dialog(&d, "ACK", d.cseq, "");
            self.send(ack).await?;
            return Ok(d);
        }
    }

    /// [`Ua::start_invite`] then [`Ua::finish_invite`].
    pub async fn invite(
        &mut self,
        target: &str,
        sdp: &str,
        limit: Duration,
    ) -> anyhow::Result<Dialog> {
        let d = self.start_invite(target, sdp).await?;
        self.finish_invite(d, limit).await
    }

    /// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3: the INVITE's Via, the
    /// response's To).
    async fn ack_non_2xx(&mut self, d: &Dialog, r: &S::Msg) -> anyhow::Result<()> {
        let m = format!(
            "ACK {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            d.target,
            S::header(r, "Via").unwrap_or_default(),
            S::header(r, "To").unwrap_or_default(),
            d.local,
            d.local_tag,
            d.call_id,
            d.cseq
        );
        self.send(m).await
    }

    /// The CANCEL of the pending INVITE of `d` (its Via, RFC 3261 §9.1).
    pub async fn cancel(&mut self, d: &Dialog) -> anyhow::Result<()> {
        let m = format!(
            "CANCEL {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {} CANCEL\r\nContent-Length: 0\r\n\r\n",
            d.target, d.invite_via, d.remote, d.local, d.local_tag, d.call_id, d.cseq
        );
        self.send(m).await
    }

    /// An in-dialog request of `d` with CSeq `cseq` and an optional SDP body.
    pub fn in_dialog(&mut self, d: &Dialog, method: &str, cseq: u32, sdp: &str) -> String {
        let via = self.via();
        let route: String = d.route.iter().map(|r| format!("Route: {r}\r\n")).collect();
        let ct = if sdp.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{route}To: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
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

    /// BYE; the final status (0: none within 10 s).
    pub async fn bye(&mut self, d: &mut Dialog) -> anyhow::Result<u16> {
        d.cseq += 1;
        let m = self.in_dialog(d, "BYE", d.cseq, "");
        self.send(m).await?;
        Ok(self
            .final_response(&d.call_id, "BYE", Duration::from_secs(10))
            .await?
            .and_then(|r| S::status(&r))
            .unwrap_or(0))
    }

    /// A re-INVITE with `sdp`; ACKs a 2xx (and keeps its SDP). The final status (0: none
    /// within 10 s).
    pub async fn reinvite(&mut self, d: &mut Dialog, sdp: &str) -> anyhow::Result<u16> {
        d.cseq += 1;
        let m = self.in_dialog(d, "INVITE", d.cseq, sdp);
        self.send(m).await?;
        let Some(r) = self
            .final_response(&d.call_id, "INVITE", Duration::from_secs(10))
            .await?
        else {
            return Ok(0);
        };
        let code = S::status(&r).unwrap_or(0);
        if code < 300 {
            d.answer_sdp = String::from_utf8_lossy(S::body(&r)).into_owned();
            let ack = self.in_dialog(d, "ACK", d.cseq, "");
            self.send(ack).await?;
        }
        Ok(code)
    }

    /// Answers the incoming INVITE `inv` as SIP.js does: 100, 180, then 200 with `sdp`, the
    /// latter two copying its Record-Route (RFC 3261 §12.1.1). Returns our side of the dialog.
    pub async fn answer(&mut self, inv: &S::Msg, sdp: &str) -> anyhow::Result<Dialog> {
        let n = self.next();
        let tag = format!("c{}{n}", self.token);
        let rr: Vec<(&str, String)> = S::header_list(inv, "Record-Route")
            .into_iter()
            .map(|v| ("Record-Route", v))
            .collect();
        let r = S::response(inv, 100, "Trying", Some(&tag), &[], b"");
        self.send_msg(&r).await?;
        let r = S::response(inv, 180, "Ringing", Some(&tag), &rr, b"");
        self.send_msg(&r).await?;
        let mut extra = rr;
        extra.push(("Contact", self.contact()));
        extra.push(("Content-Type", "application/sdp".into()));
        let ok = S::response(inv, 200, "OK", Some(&tag), &extra, sdp.as_bytes());
        self.send_msg(&ok).await?;
        Ok(Dialog {
            call_id: S::call_id(inv).to_string(),
            local_tag: tag,
            ..Dialog::default()
        })
    }

    /// Waits (up to `limit`) for an INVITE and answers it with `sdp` ([`Ua::answer`]).
    pub async fn answer_incoming(
        &mut self,
        limit: Duration,
        sdp: &str,
    ) -> anyhow::Result<Option<S::Msg>> {
        let Some(inv) = self
            .wait_for(limit, |m| S::method(m) == Some("INVITE"))
            .await?
        else {
            return Ok(None);
        };
        self.answer(&inv, sdp).await?;
        Ok(Some(inv))
    }

    /// Waits (up to `limit`) for a `method` request and answers it 200.
    pub async fn answer_request(
        &mut self,
        method: &str,
        limit: Duration,
    ) -> anyhow::Result<Option<S::Msg>> {
        let Some(req) = self
            .wait_for(limit, |m| S::method(m) == Some(method))
            .await?
        else {
            return Ok(None);
        };
        let ok = S::response(&req, 200, "OK", None, &[], b"");
        self.send_msg(&ok).await?;
        Ok(Some(req))
    }
}
