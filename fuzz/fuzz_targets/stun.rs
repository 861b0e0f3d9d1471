//! STUN: parse, integrity and fingerprint checks never panic.
#![no_main]
use engine::proto::stun::StunMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = StunMessage::parse(data) {
        let _ = m.username();
        let _ = m.verify_integrity(b"0123456789abcdefghijkl");
        let _ = m.verify_fingerprint();
    }
});
