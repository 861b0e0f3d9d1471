//! Chrome-shaped SDP offers and answers for the load generator's browsers, and reading the far
//! end's media parameters with signaling's SDP model (the gateway's own parser).

use std::net::{IpAddr, SocketAddr};

use engine::api::Setup;
use engine::proto::dtls::Fingerprint;
use engine::proto::ice::IceCredentials;
use signaling::sdp::model::Sdp;

use crate::peer::RemoteMedia;

/// An audio offer as Chromium writes it (one BUNDLEd audio section, rtcp-mux, trickle, one host
/// candidate on loopback), with `a=setup:actpass`.
pub fn chrome_offer(session_id: u64, port: u16, ice: &IceCredentials, fp: &Fingerprint) -> String {
    chrome_sdp(session_id, port, ice, fp, "actpass")
}

/// The answer a browser gives an offer from the gateway (`a=setup:active`: we are the DTLS
/// client, as Chromium is when the offer says `actpass`).
pub fn chrome_answer(session_id: u64, port: u16, ice: &IceCredentials, fp: &Fingerprint) -> String {
    chrome_sdp(session_id, port, ice, fp, "active")
}

fn chrome_sdp(
    session_id: u64,
    port: u16,
    ice: &IceCredentials,
    fp: &Fingerprint,
    setup: &str,
) -> String {
    let mut s = String::with_capacity(1400);
    s.push_str(&format!(
        "v=0\r\no=- {session_id} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS loadgen\r\n\
         m=audio {port} UDP/TLS/RTP/SAVPF 111 9 0 8 13 126\r\nc=IN IP4 127.0.0.1\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=candidate:274159896 1 udp 2122260223 127.0.0.1 {port} typ host generation 0 network-id 1\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=ice-options:trickle\r\na=fingerprint:{}\r\n\
         a=setup:{setup}\r\na=mid:0\r\n\
         a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
         a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\na=sendrecv\r\n\
         a=msid:loadgen loadgen-audio\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
         a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
         a=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:13 CN/8000\r\na=rtpmap:126 telephone-event/8000\r\n\
         a=ssrc:{session_id} cname:loadgen\r\n",
        ice.ufrag,
        ice.pwd,
        fp.to_sdp(),
        session_id = session_id as u32,
    ));
    s
}

/// The far end's ICE/DTLS parameters and address from its SDP (answer or offer), or what is
/// missing.
pub fn remote_media(body: &[u8]) -> Result<RemoteMedia, String> {
    let sdp = Sdp::parse(body).map_err(|e| format!("SDP: {e}"))?;
    let m = sdp
        .media
        .iter()
        .find(|m| m.kind == "audio" && m.port != 0)
        .ok_or("SDP: no audio section")?;
    let get = |name: &str| m.attr(name).or_else(|| sdp.attr(name));
    let ufrag = get("ice-ufrag").ok_or("SDP: no ice-ufrag")?;
    let pwd = get("ice-pwd").ok_or("SDP: no ice-pwd")?;
    let fp = get("fingerprint").ok_or("SDP: no fingerprint")?;
    let fingerprint = Fingerprint::parse(fp).map_err(|e| format!("SDP fingerprint: {e}"))?;
    let setup = match get("setup").unwrap_or("actpass") {
        "active" => Setup::Active,
        "passive" => Setup::Passive,
        _ => Setup::ActPass,
    };
    let from_candidate = m.attrs("candidate").find_map(|c| {
        let f: Vec<&str> = c.split_whitespace().collect();
        if f.len() < 8 || !f[2].eq_ignore_ascii_case("udp") || f[7] != "host" {
            return None;
        }
        let ip: IpAddr = f[4].parse().ok()?;
        let port: u16 = f[5].parse().ok()?;
        ip.is_ipv4().then_some(SocketAddr::new(ip, port))
    });
    let addr = match from_candidate {
        Some(a) => a,
        None => {
            let ip = m
                .connection()
                .or_else(|| sdp.connection())
                .ok_or("SDP: no address")?;
            SocketAddr::new(ip, m.port)
        }
    };
    Ok(RemoteMedia {
        addr,
        ice: IceCredentials {
            ufrag: ufrag.to_string(),
            pwd: pwd.to_string(),
        },
        fingerprint,
        setup,
        ice_lite: sdp.attr("ice-lite").is_some() || m.has_attr("ice-lite"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_round_trips_through_the_gateways_parser() {
        let ice = IceCredentials::random().unwrap();
        let fp = Fingerprint::parse(
            "sha-256 9C:2C:E7:4E:C1:75:AF:F9:74:0B:55:5F:93:73:20:16:AB:03:EC:18:52:D3:8D:22:77:16:D8:F2:73:73:17:D1",
        )
        .unwrap();
        let offer = chrome_offer(42, 50000, &ice, &fp);
        let r = remote_media(offer.as_bytes()).unwrap();
        assert_eq!(r.addr, "127.0.0.1:50000".parse().unwrap());
        assert_eq!(r.ice.ufrag, ice.ufrag);
        assert_eq!(r.setup, Setup::ActPass);
        assert!(!r.ice_lite);
        assert_eq!(r.fingerprint, fp);
    }
}
