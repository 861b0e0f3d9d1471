//! ng datagrams: framing, bencode and JSON decoding and request typing never panic; accepted
//! bencode and JSON encode and decode back to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ng::bencode::{self, Limits, Value};
use ng::{datagram, json, Request};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = datagram::parse(data, &limits);
    let body = datagram::split(data).map_or(data, |d| d.body);
    if let Ok(v) = bencode::decode(body) {
        let again = bencode::encode(&v);
        assert_eq!(bencode::decode(&again).as_ref(), Ok(&v));
        if let Value::Dict(d) = &v {
            let _ = Request::from_dict(d);
        }
    }
    if let Ok(v) = json::decode(body, &limits) {
        assert_eq!(json::decode(&json::encode(&v), &limits).ok(), Some(v));
    }
});
