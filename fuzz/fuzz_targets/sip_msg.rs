//! SIP parser: never panics; whatever parses prints and parses again to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use signaling::sip::msg::{error_response_for, SipMsg};

fuzz_target!(|data: &[u8]| {
    match SipMsg::parse(data) {
        Ok(m) => {
            let again = SipMsg::parse(&m.to_bytes()).expect("a printed message parses");
            // Printing always writes Content-Length, so compare the other headers.
            let count = |m: &SipMsg| m.headers.iter().filter(|h| h.name != "Content-Length").count();
            assert_eq!(count(&again), count(&m));
            assert_eq!(again.body, m.body);
            let _ = m.top_via();
            let _ = m.from_hdr();
            let _ = m.cseq();
        }
        Err(e) => {
            if let Some(r) = error_response_for(data, &e, "t") {
                SipMsg::parse(&r).expect("the error response parses");
            }
        }
    }
});
