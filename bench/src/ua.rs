//! One browser's SIP side: a WebSocket (RFC 7118) over TLS to the gateway, messages shaped as
//! SIP.js writes them, parsed with signaling's `SipMsg`, digest answers from signaling's
//! `digest`. IO only at the socket; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt, StreamExt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use signaling::sip::hdr::NameAddr;
use signaling::sip::msg::{Method, SipMsg};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// Accepts the gateway's self-signed certificate (loopback benchmarking only).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client configuration every UA shares.
pub fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// GET `path` over HTTPS (a fresh TLS connection, `Connection: close`) from `addr`, bounded
/// by `limit`: (status, body).
pub async fn https_get(
    addr: std::net::SocketAddr,
    path: &str,
    limit: Duration,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let io = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost")?;
        let mut tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        // A close without close_notify ends the read with an error; what came before counts.
        let _ = tls.read_to_end(&mut buf).await;
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(limit, io)
        .await
        .map_err(|_| anyhow!("GET {path}: no answer in {limit:?}"))??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("GET {path}: no status line in {text:?}"))?;
    Ok((status, body.to_string()))
}

/// An INVITE dialog from the UA's side.
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// Our From (caller) or To (callee) without tag.
    pub local: String,
    /// The far end's header value with its tag.
    pub remote: String,
    /// Request-URI for in-dialog requests (the far end's Contact).
    pub target: String,
    /// Route set (from Record-Route), in order for our requests.
    pub route: Vec<String>,
    /// Our next CSeq.
    pub cseq: u32,
}

/// One UA on one WebSocket connection.
pub struct Ua {
    ws: Ws,
    /// SIP user.
    pub user: String,
    /// Password for digest challenges.
    pub pass: String,
    /// Domain of our AOR.
    pub domain: String,
    token: String,
    n: u64,
    inbox: Vec<SipMsg>,
}

impl std::fmt::Debug for Ua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ua").field("user", &self.user).finish()
    }
}

impl Ua {
    /// Connects to `wss://addr{path}` with the `sip` subprotocol.
    pub async fn connect(
        tls: Arc<rustls::ClientConfig>,
        addr: std::net::SocketAddr,
        path: &str,
        user: &str,
        pass: &str,
        domain: &str,
        token: String,
    ) -> anyhow::Result<Ua> {
        let tcp = TcpStream::connect(addr).await.context("TCP connect")?;
        let _ = tcp.set_nodelay(true);
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(ServerName::try_from("localhost")?, tcp)
            .await
            .context("TLS handshake")?;
        let mut req = format!("wss://{addr}{path}").into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "sip".parse()?);
        // tungstenite zero-fills `read_buffer_size` bytes of its read buffer on every poll; the
        // media loop polls the socket on every packet, so keep it small (it grows as needed).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096);
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, tls, Some(config))
            .await
            .context("WebSocket upgrade")?;
        Ok(Ua {
            ws,
            user: user.into(),
            pass: pass.into(),
            domain: domain.into(),
            token,
            n: 0,
            inbox: Vec::new(),
        })
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

    /// Sends one SIP message.
    pub async fn send(&mut self, text: String) -> anyhow::Result<()> {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .context("WebSocket send")
    }

    /// Closes the WebSocket (bounded).
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(None)).await;
    }

    /// The next message from the socket (not the inbox), within `limit`; `Ok(None)` on timeout.
    pub async fn recv(&mut self, limit: Duration) -> anyhow::Result<Option<SipMsg>> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => bail!("WebSocket closed by the gateway"),
                Ok(Some(Err(e))) => bail!("WebSocket: {e}"),
                Ok(Some(Ok(m))) => m,
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
            match SipMsg::parse(bytes) {
                Ok(m) => return Ok(Some(m)),
                Err(e) => bail!("unparsable SIP from the gateway: {e:?}"),
            }
        }
    }

    /// The next message matching `pred` within `limit` (others are kept, requests answered
    /// by [`Ua::answer_stray`]).
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        pred: impl Fn(&SipMsg) -> bool,
    ) -> anyhow::Result<Option<SipMsg>> {
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

    /// Answers requests nobody waits for (OPTIONS, INFO, NOTIFY: 200); keeps the rest.
    pub async fn answer_stray(&mut self, m: SipMsg) -> anyhow::Result<()> {
        match m.method() {
            Some(Method::Options) | Some(Method::Info) | Some(Method::Notify) => {
                let r = m.response(200, "OK", None);
                self.send(String::from_utf8_lossy(&r.to_bytes()).into_owned())
                    .await
            }
            _ => {
                if self.inbox.len() < 64 {
                    self.inbox.push(m);
                }
                Ok(())
            }
        }
    }

    async fn final_response(
        &mut self,
        call_id: &str,
        method: Method,
        limit: Duration,
    ) -> anyhow::Result<Option<SipMsg>> {
        let cid = call_id.to_string();
        self.wait_for(limit, move |m| {
            m.call_id() == cid && m.status().is_some_and(|s| s >= 200) && m.cseq().method == method
        })
        .await
    }

    /// REGISTER, answering one 401/407 with digest; returns the final status.
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
                 Contact: {c};expires={expires}\r\nExpires: {expires}\r\n\
                 Allow: ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER\r\n\
                 Supported: path, gruu, outbound\r\nUser-Agent: loadgen (SIP.js-shaped)\r\n",
                u = self.user,
                d = self.domain,
                t = self.token,
                c = self.contact()
            );
            if let Some((name, value)) = &auth {
                m.push_str(&format!("{name}: {value}\r\n"));
            }
            m.push_str("Content-Length: 0\r\n\r\n");
            self.send(m).await?;
            let Some(r) = self
                .final_response(&call_id, Method::Register, Duration::from_secs(10))
                .await?
            else {
                bail!("REGISTER: no final response in 10 s");
            };
            let code = r.status().unwrap_or(0);
            if (code == 401 || code == 407) && auth.is_none() {
                auth = Some(self.challenge_answer(&r, "REGISTER", &uri)?);
                continue;
            }
            return Ok(code);
        }
        bail!("REGISTER: challenged twice")
    }

    fn challenge_answer(
        &mut self,
        r: &SipMsg,
        method: &str,
        uri: &str,
    ) -> anyhow::Result<(&'static str, String)> {
        let (ch_name, resp_name) = if r.status() == Some(401) {
            ("WWW-Authenticate", "Authorization")
        } else {
            ("Proxy-Authenticate", "Proxy-Authorization")
        };
        let ch = r
            .header(ch_name)
            .ok_or_else(|| anyhow!("{} without {ch_name}", r.status().unwrap_or(0)))?;
        let cnonce = format!("{:08x}", self.next());
        let value =
            signaling::sip::digest::answer(ch, method, uri, &self.user, &self.pass, &cnonce)
                .ok_or_else(|| anyhow!("unsupported challenge: {ch}"))?;
        Ok((resp_name, value))
    }

    fn invite_text(&mut self, d: &Dialog, auth: Option<&(&str, String)>, sdp: &str) -> String {
        let via = self.via();
        let mut m = format!(
            "INVITE {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\n\
             Call-ID: {}\r\nCSeq: {} INVITE\r\nContact: {}\r\n\
             Allow: ACK,CANCEL,INVITE,MESSAGE,BYE,OPTIONS,INFO,NOTIFY,REFER\r\n\
             Supported: outbound\r\nUser-Agent: loadgen (SIP.js-shaped)\r\nContent-Type: application/sdp\r\n",
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

    /// Sends an INVITE to `target` with `sdp` and waits for the final response, answering one
    /// 401/407. On a 2xx sends the ACK and returns the dialog and the 200; otherwise the status.
    pub async fn invite(
        &mut self,
        target: &str,
        sdp: &str,
        limit: Duration,
    ) -> anyhow::Result<Result<(Dialog, SipMsg), u16>> {
        let n = self.next();
        let mut d = Dialog {
            call_id: format!("lg-{}-{n}", self.token),
            local_tag: format!("t{}{n}", self.token),
            local: format!("<sip:{}@{}>", self.user, self.domain),
            remote: format!("<{target}>"),
            target: target.to_string(),
            route: Vec::new(),
            cseq: 1,
        };
        let text = self.invite_text(&d, None, sdp);
        self.send(text).await?;
        let mut challenged = false;
        loop {
            let Some(r) = self
                .final_response(&d.call_id.clone(), Method::Invite, limit)
                .await?
            else {
                bail!("INVITE: no final response in {} s", limit.as_secs());
            };
            let code = r.status().unwrap_or(0);
            if code >= 300 {
                self.ack_non_2xx(&d, &r).await?;
                if (code == 401 || code == 407) && !challenged {
                    challenged = true;
                    let auth = self.challenge_answer(&r, "INVITE", target)?;
                    d.cseq += 1;
                    let text = self.invite_text(&d, Some(&auth), sdp);
                    self.send(text).await?;
                    continue;
                }
                return Ok(Err(code));
            }
            d.remote = r.header("To").unwrap_or_default().to_string();
            if let Some(c) = r
                .header("Contact")
                .and_then(|c| NameAddr::parse(c, "Contact").ok())
            {
                d.target = c.uri;
            }
            let mut rr: Vec<String> = r
                .headers_named("Record-Route")
                .flat_map(|v| signaling::sip::hdr::split_list(v))
                .map(|s| s.trim().to_string())
                .collect();
            rr.reverse();
            d.route = rr;
            let ack = self.in_dialog(&d, "ACK", d.cseq);
            self.send(ack).await?;
            return Ok(Ok((d, r)));
        }
    }

    async fn ack_non_2xx(&mut self, d: &Dialog, r: &SipMsg) -> anyhow::Result<()> {
        let via = r.header("Via").unwrap_or_default().to_string();
        let m = format!(
            "ACK {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
            d.target,
            r.header("To").unwrap_or_default(),
            d.local,
            d.local_tag,
            d.call_id,
            d.cseq
        );
        self.send(m).await
    }

    /// An in-dialog request without body.
    pub fn in_dialog(&mut self, d: &Dialog, method: &str, cseq: u32) -> String {
        let via = self.via();
        let route: String = d.route.iter().map(|r| format!("Route: {r}\r\n")).collect();
        format!(
            "{method} {} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{route}To: {}\r\nFrom: {};tag={}\r\nCall-ID: {}\r\n\
             CSeq: {cseq} {method}\r\nContact: {}\r\nContent-Length: 0\r\n\r\n",
            d.target,
            d.remote,
            d.local,
            d.local_tag,
            d.call_id,
            self.contact(),
        )
    }

    /// BYE; returns the final status (0 when none came within 5 s).
    pub async fn bye(&mut self, d: &mut Dialog) -> anyhow::Result<u16> {
        d.cseq += 1;
        let m = self.in_dialog(d, "BYE", d.cseq);
        self.send(m).await?;
        Ok(self
            .final_response(&d.call_id.clone(), Method::Bye, Duration::from_secs(5))
            .await?
            .and_then(|r| r.status())
            .unwrap_or(0))
    }

    /// Answers an incoming INVITE with 100, 180 and 200 carrying `sdp`; returns our dialog
    /// (for a BYE from our side we would need its route; the far end hangs up in this mode).
    pub async fn answer(&mut self, inv: &SipMsg, sdp: &str) -> anyhow::Result<Dialog> {
        let n = self.next();
        let tag = format!("c{}{n}", self.token);
        // RFC 3261 §12.1.1: responses that form the dialog copy the Record-Route, so the far end's
        // in-dialog requests pass the proxies that asked to stay on the path.
        let with_rr = |mut r: SipMsg| {
            for rr in inv.headers_named("Record-Route") {
                r.push_header("Record-Route", rr);
            }
            r
        };
        for (code, reason) in [(100, "Trying"), (180, "Ringing")] {
            let r = inv.response(code, reason, Some(&tag));
            let r = if code == 100 { r } else { with_rr(r) };
            self.send(String::from_utf8_lossy(&r.to_bytes()).into_owned())
                .await?;
        }
        let mut ok = with_rr(inv.response(200, "OK", Some(&tag)));
        ok.push_header("Contact", self.contact());
        ok.push_header("Content-Type", "application/sdp");
        ok.body = sdp.as_bytes().to_vec();
        self.send(String::from_utf8_lossy(&ok.to_bytes()).into_owned())
            .await?;
        Ok(Dialog {
            call_id: inv.call_id().to_string(),
            local_tag: tag,
            ..Dialog::default()
        })
    }
}
