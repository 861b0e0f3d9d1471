//! The session receive path (STUN, DTLS records, SRTP/SRTCP, RTP/RTCP on every socket of the
//! plain leg's audio and video streams) never panics. Input: a sequence of datagrams, each
//! prefixed by a socket byte and a length byte.
#![no_main]
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use engine::api::{Direction, LegIndex, LegSpec, PlainRemote, SessionId, Setup, WebRtcRemote};
use engine::proto::dtls::DtlsIdentity;
use engine::proto::session::{LocalAddrs, Session, SessionConfig, Socket, Stream};
use libfuzzer_sys::fuzz_target;

fn identity() -> DtlsIdentity {
    static ID: OnceLock<DtlsIdentity> = OnceLock::new();
    ID.get_or_init(|| DtlsIdentity::generate(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)).unwrap())
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let specs = [
        LegSpec::WebRtc(Some(WebRtcRemote {
            ice_ufrag: "rTFx".into(),
            ice_pwd: "eewzYLa06UPpH2vmbrqexlmr".into(),
            fingerprint: "sha-256 9C:2C:E7:4E:C1:75:AF:F9:74:0B:55:5F:93:73:20:16:AB:03:EC:18:52:D3:8D:22:77:16:D8:F2:73:73:17:D1".into(),
            setup: Setup::ActPass,
            direction: Direction::SendRecv,
            payload_types: vec![0, 8, 111, 96],
            // The MID extension negotiated, so fuzzed RTP exercises its parsing too.
            mid_ext: Some(4),
            video_mid: Some("1".into()),
        })),
        LegSpec::Plain(Some(PlainRemote {
            rtp: Some("127.0.0.1:6000".parse().unwrap()),
            rtcp: Some("127.0.0.1:6001".parse().unwrap()),
            rtcp_mux: false,
            direction: Direction::SendRecv,
            payload_types: vec![0, 8],
            video: Some(Box::new(PlainRemote {
                rtp: Some("127.0.0.1:6002".parse().unwrap()),
                rtcp: Some("127.0.0.1:6003".parse().unwrap()),
                payload_types: vec![96],
                ..PlainRemote::default()
            })),
        })),
    ];
    let local = [
        LocalAddrs::at("127.0.0.1:32000".parse().unwrap()),
        LocalAddrs::with_video("127.0.0.1:32002".parse().unwrap(), "127.0.0.1:32004".parse().unwrap()),
    ];
    let Ok(mut s) = Session::new(SessionId(1), &specs, local, identity(), SessionConfig::default(), now) else {
        return;
    };
    let mut buf = vec![0u8; 2048];
    let mut rest = data;
    let mut t = now;
    while rest.len() >= 2 {
        let (sock, len) = (rest[0], rest[1] as usize);
        rest = &rest[2..];
        let n = len.min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let (via, src) = match sock % 6 {
            0 => (Socket::WebRtc, "192.0.2.2:45421"),
            1 => (Socket::Rtp(LegIndex::B, Stream::Audio), "127.0.0.1:6000"),
            2 => (Socket::Rtcp(LegIndex::B, Stream::Audio), "127.0.0.1:6001"),
            3 => (Socket::Rtp(LegIndex::B, Stream::Audio), "127.0.0.9:7000"),
            4 => (Socket::Rtp(LegIndex::B, Stream::Video), "127.0.0.1:6002"),
            _ => (Socket::Rtcp(LegIndex::B, Stream::Video), "127.0.0.1:6003"),
        };
        let _ = s.handle_datagram(t, via, src.parse().unwrap(), &mut buf, n);
        let mut out = [0u8; 2048];
        while s.poll_transmit(&mut out).is_some() {}
        while s.poll_event().is_some() {}
        t += Duration::from_millis(u64::from(sock));
        s.handle_timeout(t);
    }
});
