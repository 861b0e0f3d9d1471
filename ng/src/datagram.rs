//! The ng datagram: `<cookie><SP><dictionary>` (rtpengine `docs/ng_control_protocol.md`,
//! `daemon/control_ng.c`; notes §1).
//!
//! - The cookie is every byte before the first space. A datagram without a space, or starting
//!   with one, has no cookie to answer with: rtpengine logs and drops it, and so do we
//!   ([`split`] returns `None`).
//! - The body is told apart by its first byte: `d` is bencode, `{` is JSON (rtpengine mr10.3+);
//!   the reply goes back in the same format, with the request's cookie verbatim, one space, the
//!   dictionary.
//! - A body that does not decode is answered with `result: error` and rtpengine's reason string
//!   ([`BodyError::reason`]), as is a dictionary without `command`.

use crate::bencode::{self, DecodeError, Dict, Limits, Value};
use crate::json::{self, JsonError};
use crate::request::{Request, RequestError};
use crate::response::{reason, Response};

/// Cookies longer than this are dropped unanswered. Kamailio's are `<server_id>_<pid>_<seq>`,
/// OpenSIPS' `<pid>_<rand>_<seq>`: a few dozen bytes. The bound keeps the reply cache's keys
/// small; rtpengine has none (our choice).
pub const MAX_COOKIE_LEN: usize = 256;

/// A datagram cut at its first space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub cookie: &'a [u8],
    pub body: &'a [u8],
}

/// Splits a datagram into cookie and body; `None` when it has no usable cookie.
pub fn split(datagram: &[u8]) -> Option<Datagram<'_>> {
    let space = datagram.iter().position(|&b| b == b' ')?;
    if space == 0 || space > MAX_COOKIE_LEN {
        return None;
    }
    Some(Datagram {
        cookie: &datagram[..space],
        body: &datagram[space + 1..],
    })
}

/// The dictionary encoding of a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Bencode,
    Json,
}

/// Why a body is not a dictionary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    #[error("empty body")]
    NoPayload,
    #[error("body starts with neither 'd' nor '{{'")]
    InvalidFormat,
    #[error("bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("JSON: {0}")]
    Json(#[from] JsonError),
    #[error("JSON document is not an object")]
    JsonNotADict,
}

impl BodyError {
    /// The `error-reason` rtpengine answers with.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::NoPayload => reason::NO_PAYLOAD,
            BodyError::InvalidFormat => reason::INVALID_FORMAT,
            BodyError::Json(JsonError::Syntax(_)) => reason::BAD_JSON,
            BodyError::Bencode(_) | BodyError::Json(_) | BodyError::JsonNotADict => {
                reason::BAD_BENCODE
            }
        }
    }
}

/// The body's format from its first byte; bencode when there is none (the error reply to an
/// empty or unknown body goes out as bencode, as rtpengine's does).
pub fn format_of(body: &[u8]) -> Format {
    if body.first() == Some(&b'{') {
        Format::Json
    } else {
        Format::Bencode
    }
}

/// Decodes a body into its dictionary.
pub fn decode_body(body: &[u8], limits: &Limits) -> Result<Dict, BodyError> {
    match body.first() {
        None => Err(BodyError::NoPayload),
        Some(b'd') => match bencode::decode_with(body, limits)? {
            Value::Dict(d) => Ok(d),
            _ => unreachable!("a value starting with 'd' is a dictionary"),
        },
        Some(b'{') => match json::decode(body, limits)? {
            Value::Dict(d) => Ok(d),
            _ => Err(BodyError::JsonNotADict),
        },
        Some(_) => Err(BodyError::InvalidFormat),
    }
}

/// Builds a reply datagram: `cookie`, a space, the dictionary in `format`.
pub fn join(cookie: &[u8], format: Format, dict: &Dict) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    // The encoders take a `Value`; the clone is of a reply, once per request, not per packet.
    let value = Value::Dict(dict.clone());
    match format {
        Format::Bencode => bencode::encode_into(&value, &mut out),
        Format::Json => out.extend_from_slice(&json::encode(&value)),
    }
    out
}

/// What to do with one received datagram, before any command runs.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// No cookie: drop it, nothing to answer.
    Drop,
    /// Refused before reaching a command: send this reply (already framed with the cookie).
    Reply { cookie: &'a [u8], reply: Vec<u8> },
    /// A request for the command layer; answer with [`join`] in `format`.
    Request {
        cookie: &'a [u8],
        format: Format,
        request: Box<Request>,
    },
}

/// Splits, decodes and types one datagram.
pub fn parse<'a>(datagram: &'a [u8], limits: &Limits) -> Incoming<'a> {
    let Some(Datagram { cookie, body }) = split(datagram) else {
        return Incoming::Drop;
    };
    let format = format_of(body);
    let refuse = |why: &str| Incoming::Reply {
        cookie,
        reply: join(cookie, format, Response::error(why).dict()),
    };
    let dict = match decode_body(body, limits) {
        Ok(d) => d,
        Err(e) => return refuse(e.reason()),
    };
    match Request::from_dict(&dict) {
        Ok(request) => Incoming::Request {
            cookie,
            format,
            request: Box::new(request),
        },
        Err(RequestError::NoCommand) => refuse(reason::NO_COMMAND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Command;

    fn reply_of(datagram: &[u8]) -> Vec<u8> {
        match parse(datagram, &Limits::default()) {
            Incoming::Reply { reply, .. } => reply,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn ping_example_from_the_doc() {
        // `5323_1 d7:command4:pinge` → `5323_1 d6:result4:ponge` (notes §1).
        let Incoming::Request {
            cookie,
            format,
            request,
        } = parse(b"5323_1 d7:command4:pinge", &Limits::default())
        else {
            panic!("a ping is a request");
        };
        assert_eq!(cookie, b"5323_1");
        assert_eq!(format, Format::Bencode);
        assert_eq!(request.command, Some(Command::Ping));
        assert_eq!(
            join(cookie, format, Response::pong().dict()),
            b"5323_1 d6:result4:ponge"
        );
    }

    #[test]
    fn kamailio_cookie_and_json() {
        // Kamailio 5.6's cookie shape `<server_id>_<pid>_<seq>`.
        let Incoming::Request { cookie, format, .. } =
            parse(br#"0_4711_12 {"command":"ping"}"#, &Limits::default())
        else {
            panic!("a JSON ping is a request");
        };
        assert_eq!(cookie, b"0_4711_12");
        assert_eq!(format, Format::Json);
        assert_eq!(
            join(cookie, format, Response::pong().dict()),
            br#"0_4711_12 {"result":"pong"}"#
        );
    }

    #[test]
    fn no_cookie_no_reply() {
        for d in [
            &b""[..],
            b"d7:command4:pinge",
            b" d7:command4:pinge",
            b"nospace",
        ] {
            assert!(matches!(parse(d, &Limits::default()), Incoming::Drop));
        }
        let long = [
            vec![b'c'; MAX_COOKIE_LEN + 1],
            b" d7:command4:pinge".to_vec(),
        ]
        .concat();
        assert!(matches!(parse(&long, &Limits::default()), Incoming::Drop));
        let max = [vec![b'c'; MAX_COOKIE_LEN], b" d7:command4:pinge".to_vec()].concat();
        assert!(matches!(
            parse(&max, &Limits::default()),
            Incoming::Request { .. }
        ));
    }

    #[test]
    fn refusals_carry_rtpengine_reasons() {
        assert_eq!(
            reply_of(b"c1 "),
            b"c1 d12:error-reason25:Invalid data (no payload)6:result5:errore"
        );
        assert_eq!(
            reply_of(b"c1 l4:pinge"),
            b"c1 d12:error-reason22:Invalid NG data format6:result5:errore"
        );
        assert_eq!(
            reply_of(b"c1 d7:command4:ping"),
            b"c1 d12:error-reason35:Could not decode bencode dictionary6:result5:errore"
        );
        assert_eq!(
            reply_of(b"c1 d7:command4:pingejunk"),
            b"c1 d12:error-reason35:Could not decode bencode dictionary6:result5:errore"
        );
        assert_eq!(
            reply_of(b"c1 d4:calldee"),
            b"c1 d12:error-reason36:Dictionary contains no key \"command\"6:result5:errore"
        );
        assert_eq!(
            reply_of(b"c1 {\"command\":"),
            br#"c1 {"error-reason":"Failed to parse JSON document","result":"error"}"#
        );
        assert_eq!(
            reply_of(b"c1 {\"command\":null}"),
            br#"c1 {"error-reason":"Could not decode bencode dictionary","result":"error"}"#
        );
    }

    #[test]
    fn cookie_is_echoed_byte_for_byte() {
        // Anything but a space may be in a cookie; the body may hold spaces.
        let d = b"\x00\xffk\x7f d7:command4:ping3:sdp3:a be";
        let Incoming::Request { cookie, .. } = parse(d, &Limits::default()) else {
            panic!("a request");
        };
        assert_eq!(cookie, b"\x00\xffk\x7f");
        let reply = join(cookie, Format::Bencode, Response::ok().dict());
        assert!(reply.starts_with(b"\x00\xffk\x7f d"));
    }
}
