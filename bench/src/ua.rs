//! One browser's SIP side: the kit's WSS SIP UA (`testkit::sipua`) over signaling's SIP stack,
//! and the HTTPS probe. IO only at the socket; every wait is bounded.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

#[path = "../../testkit/adapters/signaling_sip.rs"]
mod signaling_sip;

pub use signaling_sip::SignalingSip;
pub use testkit::sipua::{Dialog, UaConfig};

/// One UA on one WebSocket connection, speaking through signaling's SIP stack.
pub type Ua = testkit::sipua::Ua<SignalingSip>;

/// The TLS client configuration every UA shares (any certificate: loopback benchmarking only).
pub fn tls_config() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    Ok(testkit::tls::any_cert_client_config())
}

/// The load generator's UA identity: SIP.js-shaped messages under its own User-Agent, the
/// requests nobody waits for answered.
pub fn ua_config(user: &str, pass: &str, domain: &str, token: String) -> UaConfig {
    UaConfig {
        token,
        user_agent: "loadgen (SIP.js-shaped)".into(),
        answer_strays: true,
        ..UaConfig::new(user, pass, domain)
    }
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
