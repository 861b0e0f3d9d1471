//! SDP parser and both translations: never panic on any body.
#![no_main]
use engine::api::Setup;
use libfuzzer_sys::fuzz_target;
use signaling::sdp::model::Sdp;
use signaling::sdp::pts::PtFilter;
use signaling::sdp::translate::{self, LocalWebRtc, Origin};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let _ = Sdp::parse(&sdp.to_bytes()).expect("a printed SDP parses");
    let f = PtFilter::parse("[G722/8000],[PCMU/8000],[PCMA/8000],[telephone-event/8000],[VP8/90000]").unwrap();
    let local = LocalWebRtc {
        addr: "127.0.0.1:32000".parse().unwrap(),
        ice_ufrag: "u".into(),
        ice_pwd: "p".into(),
        fingerprint: "sha-256 AA".into(),
        setup: Setup::Passive,
    };
    let mut o = Origin::new(1, "127.0.0.1".parse().unwrap());
    let _ = translate::webrtc_remote(&sdp);
    let _ = translate::plain_remote(&sdp);
    // With a video pair, so the video section's path is fuzzed too.
    let (rtp, video) = ("127.0.0.1:32002".parse().unwrap(), Some("127.0.0.1:32004".parse().unwrap()));
    let _ = translate::to_plain(&sdp, rtp, video, &f, &mut o, None);
    let _ = translate::to_plain(&sdp, rtp, video, &f, &mut o, Some(&sdp));
    let _ = translate::to_webrtc(&sdp, &local, &f, &mut o, None);
    let _ = translate::to_webrtc(&sdp, &local, &f, &mut o, Some(&sdp));
    let _ = translate::relay_webrtc(&sdp, &local, &f, &mut o, Some(&sdp));
});
