//! Reply dictionaries: `result` is `pong`, `ok`, `error` or `load limit`; an error carries only
//! `error-reason`; `ok` may carry `warning` and the command's data (`sdp`, statistics).
//! (rtpengine `docs/ng_control_protocol.md` l.63-80, `daemon/control_ng.c`; notes §1, §4.)

use crate::bencode::{Dict, Value};

/// `error-reason` strings with the exact spelling rtpengine uses. Kamailio 5.6 compares two of
/// them byte for byte to decide to try the next node ([`RAN_OUT_OF_PORTS`],
/// [`SESSION_LIMIT`]); the others are for humans reading logs, kept identical so logs and
/// monitoring written for rtpengine still match.
pub mod reason {
    /// The body is empty after the cookie.
    pub const NO_PAYLOAD: &str = "Invalid data (no payload)";
    /// The body starts with neither `d` nor `{`.
    pub const INVALID_FORMAT: &str = "Invalid NG data format";
    /// Bencode that did not decode, or JSON that is not a dictionary.
    pub const BAD_BENCODE: &str = "Could not decode bencode dictionary";
    /// JSON that did not parse.
    pub const BAD_JSON: &str = "Failed to parse JSON document";
    /// No `command` key.
    pub const NO_COMMAND: &str = "Dictionary contains no key \"command\"";
    /// A command we do not implement.
    pub const UNRECOGNIZED_COMMAND: &str = "Unrecognized command";
    /// No `call-id` where one is needed.
    pub const NO_CALL_ID: &str = "No call-id in message";
    /// No `from-tag` where one is needed.
    pub const NO_FROM_TAG: &str = "No from-tag in message";
    /// No `to-tag` in an answer.
    pub const NO_TO_TAG: &str = "No to-tag in message";
    /// No `sdp` in an offer or answer.
    pub const NO_SDP: &str = "No SDP body in message";
    /// An answer, query or delete (with `fatal`) for a call we do not have.
    pub const UNKNOWN_CALL_ID: &str = "Unknown call-id";
    /// The SDP did not parse.
    pub const BAD_SDP: &str = "Failed to parse SDP";
    /// The SDP parsed but lacks what the command needs.
    pub const INCOMPLETE_SDP: &str = "Incomplete SDP specification";
    /// No media ports left. Kamailio fails over on this string.
    pub const RAN_OUT_OF_PORTS: &str = "Ran out of ports";
    /// The session limit is reached. Kamailio fails over on this string.
    pub const SESSION_LIMIT: &str = "Parallel session limit reached";
    /// The `warning` of a non-fatal `delete` for an unknown call.
    pub const CALL_NOT_FOUND: &str = "Call-ID not found or tags didn't match";
}

/// Which capacity ran out, for [`Response::capacity`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capacity {
    /// No free media ports.
    Ports,
    /// The configured maximum of sessions.
    Sessions,
    /// A CPU usage limit.
    Cpu,
    /// A load-average limit.
    Load,
    /// A bandwidth limit.
    Bandwidth,
}

impl Capacity {
    /// rtpengine's text for this limit.
    pub fn message(self) -> &'static str {
        match self {
            Capacity::Ports => reason::RAN_OUT_OF_PORTS,
            Capacity::Sessions => reason::SESSION_LIMIT,
            Capacity::Cpu => "CPU usage limit exceeded",
            Capacity::Load => "Load limit exceeded",
            Capacity::Bandwidth => "Bandwidth limit exceeded",
        }
    }
}

/// A reply dictionary under construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    dict: Dict,
}

impl Response {
    fn result(result: &str) -> Response {
        let mut dict = Dict::new();
        dict.insert(b"result".to_vec(), Value::str(result));
        Response { dict }
    }

    /// The answer to `ping`.
    pub fn pong() -> Response {
        Response::result("pong")
    }

    /// Success.
    pub fn ok() -> Response {
        Response::result("ok")
    }

    /// Failure; `error-reason` is the only other key, as in rtpengine.
    pub fn error(reason: &str) -> Response {
        let mut r = Response::result("error");
        r.dict.insert(b"error-reason".to_vec(), Value::str(reason));
        r
    }

    /// A capacity refusal. Sessions, CPU, load and bandwidth limits answer `result: load limit`
    /// with the text in `message` when the request listed `supports: ["load limit"]`, and an
    /// `error` with that text otherwise; running out of ports is always an `error`
    /// (rtpengine `control_ng.c`, `call_interfaces.c`). Kamailio 5.6 tries the next node on
    /// `load limit` and on the error reasons "Ran out of ports" and "Parallel session limit
    /// reached" (`rtpengine.c` 5.6.3 l.304-308, l.2750-2770).
    pub fn capacity(limit: Capacity, supports_load_limit: bool) -> Response {
        if supports_load_limit && limit != Capacity::Ports {
            let mut r = Response::result("load limit");
            r.dict
                .insert(b"message".to_vec(), Value::str(limit.message()));
            r
        } else {
            Response::error(limit.message())
        }
    }

    /// Adds a non-fatal `warning`.
    #[must_use]
    pub fn with_warning(self, warning: &str) -> Response {
        self.with(b"warning", Value::str(warning))
    }

    /// Adds the rewritten `sdp`.
    #[must_use]
    pub fn with_sdp(self, sdp: &[u8]) -> Response {
        self.with(b"sdp", Value::Bytes(sdp.to_vec()))
    }

    /// Adds any other key (statistics, `calls` for `list`). `result` cannot be replaced.
    #[must_use]
    pub fn with(mut self, key: &[u8], value: Value) -> Response {
        if key != b"result" {
            self.dict.insert(key.to_vec(), value);
        }
        self
    }

    /// The `result` string.
    pub fn result_str(&self) -> &[u8] {
        self.dict[&b"result"[..]]
            .as_bytes()
            .expect("every constructor sets result to a string")
    }

    /// The dictionary to send.
    pub fn dict(&self) -> &Dict {
        &self.dict
    }

    /// The dictionary to send, by value.
    pub fn into_dict(self) -> Dict {
        self.dict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::encode;

    fn wire(r: &Response) -> Vec<u8> {
        encode(&Value::Dict(r.dict().clone()))
    }

    #[test]
    fn results_on_the_wire() {
        assert_eq!(wire(&Response::pong()), b"d6:result4:ponge");
        assert_eq!(wire(&Response::ok()), b"d6:result2:oke");
        assert_eq!(
            wire(&Response::ok().with_sdp(b"v=0\r\n")),
            b"d6:result2:ok3:sdp5:v=0\r\ne"
        );
        assert_eq!(
            wire(&Response::error(reason::UNRECOGNIZED_COMMAND)),
            b"d12:error-reason20:Unrecognized command6:result5:errore"
        );
        assert_eq!(
            wire(&Response::ok().with_warning(reason::CALL_NOT_FOUND)),
            b"d6:result2:ok7:warning38:Call-ID not found or tags didn't matche"
        );
    }

    #[test]
    fn capacity_strings_kamailio_fails_over_on() {
        assert_eq!(
            wire(&Response::capacity(Capacity::Ports, true)),
            b"d12:error-reason16:Ran out of ports6:result5:errore"
        );
        assert_eq!(
            wire(&Response::capacity(Capacity::Sessions, false)),
            b"d12:error-reason30:Parallel session limit reached6:result5:errore"
        );
        assert_eq!(
            wire(&Response::capacity(Capacity::Sessions, true)),
            b"d7:message30:Parallel session limit reached6:result10:load limite"
        );
        assert_eq!(
            Response::capacity(Capacity::Cpu, true).result_str(),
            b"load limit"
        );
        assert_eq!(
            Response::capacity(Capacity::Bandwidth, false).result_str(),
            b"error"
        );
    }

    #[test]
    fn result_cannot_be_overwritten() {
        let r = Response::error("x").with(b"result", Value::str("ok"));
        assert_eq!(r.result_str(), b"error");
    }
}
