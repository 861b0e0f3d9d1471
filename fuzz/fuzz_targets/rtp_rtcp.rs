//! RFC 7983 demux and the RTP/RTCP header views never panic.
#![no_main]
use engine::proto::wire::{demux, RtcpHeader, RtpHeader, RtpHeaderMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = demux(data);
    if let Ok(h) = RtpHeader::parse(data) {
        let _ = (h.pt(), h.seq(), h.timestamp(), h.ssrc(), h.header_len(), h.csrc_count(), h.extension_profile());
    }
    let _ = RtcpHeader::parse(data);
    let mut copy = data.to_vec();
    let _ = RtpHeaderMut::parse(&mut copy);
});
