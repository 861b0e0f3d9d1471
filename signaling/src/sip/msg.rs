//! SIP messages: parse and print (RFC 3261 §7, §25).
//!
//! The parser accepts what RFC 4475 calls valid: compact header names, any header-name case,
//! LWS around colons, folded lines, comma-joined values of list headers (split into one
//! [`Header`] per value) and leading CRLFs. It refuses what RFC 4475 calls invalid with a
//! [`ParseError`] that carries the response code a server answers with (400, 505, 513).

use super::hdr::{self, CSeq, NameAddr, Via};
pub use super::method::Method;

/// Largest SIP message accepted on any transport.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most header fields (after splitting lists) in one message.
pub const MAX_HEADERS: usize = 256;

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: Method, uri: String },
    Response { code: u16, reason: String },
}

/// One header field value (list headers hold one value each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Canonical name: compact forms expanded, known names in their usual case.
    pub name: String,
    pub value: String,
}

/// Why a message cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct ParseError {
    /// The status a server answers a request with: 400, 505 or 513.
    pub status: u16,
    pub reason: String,
}

fn bad(reason: impl Into<String>) -> ParseError {
    ParseError {
        status: 400,
        reason: reason.into(),
    }
}

/// A parsed SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMsg {
    pub start: StartLine,
    pub headers: Vec<Header>,
    pub body: Vec<u8>,
}

/// (compact, canonical) header names, RFC 3261 §7.3.3 and the IANA registry.
const COMPACT: &[(&str, &str)] = &[
    ("a", "Accept-Contact"),
    ("b", "Referred-By"),
    ("c", "Content-Type"),
    ("d", "Request-Disposition"),
    ("e", "Content-Encoding"),
    ("f", "From"),
    ("i", "Call-ID"),
    ("j", "Reject-Contact"),
    ("k", "Supported"),
    ("l", "Content-Length"),
    ("m", "Contact"),
    ("n", "Identity-Info"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("s", "Subject"),
    ("t", "To"),
    ("u", "Allow-Events"),
    ("v", "Via"),
    ("x", "Session-Expires"),
    ("y", "Identity"),
];

/// Known names in their usual spelling; `true` marks comma-separated list headers (§7.3.1).
const KNOWN: &[(&str, bool)] = &[
    ("Accept", true),
    ("Accept-Contact", true),
    ("Accept-Encoding", true),
    ("Accept-Language", true),
    ("Alert-Info", true),
    ("Allow", true),
    ("Allow-Events", true),
    ("Authentication-Info", false),
    ("Authorization", false),
    ("Call-ID", false),
    ("Call-Info", true),
    ("Contact", true),
    ("Content-Disposition", false),
    ("Content-Encoding", true),
    ("Content-Language", true),
    ("Content-Length", false),
    ("Content-Type", false),
    ("CSeq", false),
    ("Date", false),
    ("Error-Info", true),
    ("Event", false),
    ("Expires", false),
    ("From", false),
    ("In-Reply-To", true),
    ("Max-Forwards", false),
    ("Min-Expires", false),
    ("Min-SE", false),
    ("MIME-Version", false),
    ("Organization", false),
    ("Path", true),
    ("Priority", false),
    ("Proxy-Authenticate", false),
    ("Proxy-Authorization", false),
    ("Proxy-Require", true),
    ("RAck", false),
    ("Reason", true),
    ("Record-Route", true),
    ("Refer-To", false),
    ("Referred-By", false),
    ("Reject-Contact", true),
    ("Reply-To", false),
    ("Request-Disposition", true),
    ("Require", true),
    ("Retry-After", false),
    ("Route", true),
    ("RSeq", false),
    ("Server", false),
    ("Session-Expires", false),
    ("Subject", false),
    ("Subscription-State", false),
    ("Supported", true),
    ("Timestamp", false),
    ("To", false),
    ("Unsupported", true),
    ("User-Agent", false),
    ("Via", true),
    ("Warning", true),
    ("WWW-Authenticate", false),
];

/// Headers that may appear once only.
const SINGLETONS: &[&str] = &[
    "Call-ID",
    "CSeq",
    "From",
    "To",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

/// The canonical spelling of a header name and whether it is a list header.
pub fn canonical_name(raw: &str) -> (String, bool) {
    let full = COMPACT
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(raw))
        .map_or(raw, |(_, full)| full);
    match KNOWN.iter().find(|(k, _)| k.eq_ignore_ascii_case(full)) {
        Some((k, list)) => ((*k).to_string(), *list),
        None => (full.to_string(), false),
    }
}

impl SipMsg {
    /// Parses one message from a datagram or WebSocket message. Bytes after the body that
    /// Content-Length announces are ignored (RFC 3261 §18.3).
    pub fn parse(buf: &[u8]) -> Result<SipMsg, ParseError> {
        if buf.len() > MAX_MESSAGE_BYTES {
            return Err(ParseError {
                status: 513,
                reason: "Message Too Large".into(),
            });
        }
        // §7.5: CRLFs before the start line are ignored.
        let start = buf
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .ok_or_else(|| bad("empty message"))?;
        let buf = &buf[start..];
        let (head_end, body_start) = find_head_end(buf).ok_or_else(|| bad("no end of headers"))?;
        let head =
            std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("headers are not UTF-8"))?;
        // A backslash before a line end would quote a CR or LF (RFC 3261 §25.1 forbids it): a
        // peer that reads it so would see the next line inside this header, another would see
        // a header of its own there. Neither is relayed.
        if head
            .as_bytes()
            .windows(2)
            .any(|w| w[0] == b'\\' && matches!(w[1], b'\r' | b'\n'))
        {
            return Err(bad("backslash before a line end"));
        }
        let mut lines = unfold(head).into_iter();
        let first = lines.next().ok_or_else(|| bad("no start line"))?;
        let start = parse_start_line(&first)?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad("header line without ':'"))?;
            let name = name.trim_end_matches([' ', '\t']);
            if !hdr::is_token(name) {
                return Err(bad(format!("bad header name '{name}'")));
            }
            let (name, is_list) = canonical_name(name);
            let value = value.trim_matches([' ', '\t']);
            // Control characters only as quoted-pairs (RFC 3261 §25.1; RFC 4475 intmeth), and
            // never CR, LF or NUL: RFC 3261 §25.1 excludes them from quoted-pair, and a value
            // holding one would split or end a header when copied to the other leg.
            let vb = value.as_bytes();
            if (0..vb.len()).any(|i| {
                matches!(vb[i], b'\r' | b'\n' | 0)
                    || vb[i] < 0x20 && vb[i] != b'\t' && (i == 0 || vb[i - 1] != b'\\')
            }) {
                return Err(bad(format!("control character in {name}")));
            }
            if is_list && !(name == "Contact" && value == "*") {
                for v in hdr::split_list(value) {
                    if v.is_empty()
                        && matches!(
                            name.as_str(),
                            "Via" | "Contact" | "Route" | "Record-Route" | "Path"
                        )
                    {
                        return Err(bad(format!("empty element in {name}")));
                    }
                    if !v.is_empty() {
                        headers.push(Header {
                            name: name.clone(),
                            value: v.to_string(),
                        });
                    }
                }
            } else {
                headers.push(Header {
                    name,
                    value: value.to_string(),
                });
            }
            if headers.len() > MAX_HEADERS {
                return Err(bad("too many header fields"));
            }
        }
        let mut msg = SipMsg {
            start,
            headers,
            body: Vec::new(),
        };
        let rest = &buf[body_start..];
        msg.body = match msg.header("Content-Length") {
            Some(cl) => {
                let n: usize = cl
                    .parse()
                    .ok()
                    .filter(|n| *n <= MAX_MESSAGE_BYTES)
                    .ok_or_else(|| bad("bad Content-Length"))?;
                if n > rest.len() {
                    return Err(bad("Content-Length larger than the body"));
                }
                rest[..n].to_vec()
            }
            None => rest.to_vec(),
        };
        msg.validate()?;
        Ok(msg)
    }

    /// The checks RFC 4475's invalid messages need: mandatory and singleton headers, numeric
    /// fields, the From/To/Contact/Via/CSeq syntax, CSeq method = request method.
    fn validate(&self) -> Result<(), ParseError> {
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if self.header(name).is_none() {
                return Err(bad(format!("missing {name}")));
            }
        }
        for name in SINGLETONS {
            if self.headers_named(name).count() > 1 {
                return Err(bad(format!("more than one {name}")));
            }
        }
        if self
            .header("Call-ID")
            .is_some_and(|c| c.is_empty() || c.contains(char::is_whitespace))
        {
            return Err(bad("bad Call-ID"));
        }
        let cseq =
            CSeq::parse(self.header("CSeq").unwrap_or_default()).map_err(|e| bad(e.to_string()))?;
        if let StartLine::Request { method, .. } = &self.start {
            if *method != cseq.method && *method != Method::Ack && *method != Method::Cancel {
                return Err(bad("CSeq method does not match the request method"));
            }
            if (*method == Method::Ack || *method == Method::Cancel) && cseq.method != *method {
                return Err(bad("CSeq method does not match the request method"));
            }
        }
        if let Some(mf) = self.header("Max-Forwards") {
            if mf.parse::<u32>().ok().filter(|n| *n <= 255).is_none() {
                return Err(bad("bad Max-Forwards"));
            }
        }
        for name in ["Expires", "Min-Expires"] {
            if let Some(e) = self.header(name) {
                if e.parse::<u32>().is_err() {
                    return Err(bad(format!("bad {name}")));
                }
            }
        }
        for name in ["From", "To"] {
            NameAddr::parse(self.header(name).unwrap_or_default(), "From/To")
                .map_err(|e| bad(e.to_string()))?;
        }
        for c in self.headers_named("Contact") {
            if c != "*" {
                NameAddr::parse(c, "Contact").map_err(|e| bad(e.to_string()))?;
            }
        }
        for name in ["Route", "Record-Route", "Path"] {
            for r in self.headers_named(name) {
                NameAddr::parse(r, "Route").map_err(|e| bad(e.to_string()))?;
            }
        }
        for v in self.headers_named("Via") {
            Via::parse(v).map_err(|e| bad(e.to_string()))?;
        }
        if let Some(d) = self.header("Date") {
            // RFC 3261 §20.17: rfc1123-date, always GMT.
            if !d.trim_end().ends_with("GMT") {
                return Err(bad("Date is not in GMT"));
            }
        }
        Ok(())
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The first value of `name` (canonical or compact, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).next()
    }

    /// Every value of `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        let (canon, _) = canonical_name(name);
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(&canon))
            .map(|h| h.value.as_str())
    }

    pub fn remove_headers(&mut self, name: &str) {
        let (canon, _) = canonical_name(name);
        self.headers
            .retain(|h| !h.name.eq_ignore_ascii_case(&canon));
    }

    /// Replaces every value of `name` with one.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let (canon, _) = canonical_name(name);
        let value = value.into();
        match self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(&canon))
        {
            Some(i) => {
                self.headers[i].value = value;
                let mut seen = 0;
                self.headers.retain(|h| {
                    if h.name.eq_ignore_ascii_case(&canon) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.headers.push(Header { name: canon, value }),
        }
    }

    /// Adds a value of `name` before the existing ones (a new top Via, Record-Route, Path).
    pub fn prepend_header(&mut self, name: &str, value: impl Into<String>) {
        let (canon, _) = canonical_name(name);
        let at = self
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(&canon))
            .unwrap_or(self.headers.len());
        self.headers.insert(
            at,
            Header {
                name: canon,
                value: value.into(),
            },
        );
    }

    pub fn push_header(&mut self, name: &str, value: impl Into<String>) {
        let (canon, _) = canonical_name(name);
        self.headers.push(Header {
            name: canon,
            value: value.into(),
        });
    }

    pub fn call_id(&self) -> &str {
        self.header("Call-ID").unwrap_or_default()
    }

    /// CSeq, checked by [`SipMsg::parse`].
    pub fn cseq(&self) -> CSeq {
        CSeq::parse(self.header("CSeq").unwrap_or_default()).unwrap_or(CSeq {
            seq: 0,
            method: Method::Other(String::new()),
        })
    }

    /// The top Via, checked by [`SipMsg::parse`].
    pub fn top_via(&self) -> Option<Via> {
        self.header("Via").and_then(|v| Via::parse(v).ok())
    }

    pub fn from_hdr(&self) -> Option<NameAddr> {
        NameAddr::parse(self.header("From")?, "From").ok()
    }

    pub fn to_hdr(&self) -> Option<NameAddr> {
        NameAddr::parse(self.header("To")?, "To").ok()
    }

    /// The wire form. Content-Length is always written and always right.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.headers.len() * 48);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(method.as_str());
                out.push(' ');
                out.push_str(uri);
                out.push_str(" SIP/2.0\r\n");
            }
            StartLine::Response { code, reason } => {
                out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"));
            }
        }
        for h in self.headers.iter().filter(|h| h.name != "Content-Length") {
            out.push_str(&h.name);
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// A response to this request (RFC 3261 §8.2.6): Via, From, To, Call-ID and CSeq copied;
    /// `to_tag` added to To when it has none.
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>) -> SipMsg {
        let mut headers = Vec::new();
        for h in &self.headers {
            if matches!(h.name.as_str(), "Via" | "From" | "Call-ID" | "CSeq") {
                headers.push(h.clone());
            } else if h.name == "To" {
                let mut value = h.value.clone();
                if let (Some(tag), Ok(to)) = (to_tag, NameAddr::parse(&h.value, "To")) {
                    if to.tag().is_none() && code != 100 {
                        value = format!("{value};tag={tag}");
                    }
                }
                headers.push(Header {
                    name: h.name.clone(),
                    value,
                });
            }
        }
        SipMsg {
            start: StartLine::Response {
                code,
                reason: reason.to_string(),
            },
            headers,
            body: Vec::new(),
        }
    }
}

/// Builds the error response for a request that did not parse, from its raw header lines
/// (Via, From, To, Call-ID, CSeq copied verbatim). `None` when the input is not a request or
/// lacks one of them, so no response can be routed: the message is dropped.
pub fn error_response_for(buf: &[u8], err: &ParseError, to_tag: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(&buf[..buf.len().min(MAX_MESSAGE_BYTES)]);
    let text = text.trim_start_matches(['\r', '\n']);
    let head = text.split("\r\n\r\n").next()?;
    let mut lines = unfold(head).into_iter();
    let first = lines.next()?;
    if first.starts_with("SIP/") {
        return None;
    }
    let mut copied: Vec<(String, String)> = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, _) = canonical_name(name.trim());
        if matches!(name.as_str(), "Via" | "From" | "To" | "Call-ID" | "CSeq") {
            copied.push((name, value.trim().to_string()));
        }
    }
    for need in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !copied.iter().any(|(n, _)| n == need) {
            return None;
        }
    }
    // The response must be routable and parseable by its recipient: the copied values must be
    // well formed themselves, else the request is dropped (and counted) instead.
    let well_formed = copied
        .iter()
        .all(|(_, v)| !v.chars().any(|c| c.is_control()))
        && copied.iter().all(|(n, v)| match n.as_str() {
            "Via" => hdr::split_list(v).iter().all(|x| Via::parse(x).is_ok()),
            "From" | "To" => NameAddr::parse(v, "From/To").is_ok(),
            "CSeq" => CSeq::parse(v).is_ok(),
            _ => !v.is_empty() && !v.contains(char::is_whitespace),
        });
    if !well_formed
        || copied
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "Via"))
            .count()
            != 4
    {
        return None;
    }
    let mut out = format!("SIP/2.0 {} {}\r\n", err.status, reason_phrase(err.status));
    for (n, v) in copied {
        if n == "To" && !v.contains("tag=") {
            out.push_str(&format!("To: {v};tag={to_tag}\r\n"));
        } else {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
    }
    // The reason may quote the offending input: only printable ASCII goes into the Warning.
    let warning: String = err
        .reason
        .chars()
        .take(120)
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c == ' ' || c.is_ascii_graphic() => c,
            _ => '?',
        })
        .collect();
    out.push_str(&format!(
        "Warning: 399 webrtc-phone \"{warning}\"\r\nContent-Length: 0\r\n\r\n"
    ));
    Some(out.into_bytes())
}

/// The RFC 3261 reason phrase for a code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Finds the blank line: returns (end of headers, start of body). Accepts CRLF or bare LF.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            let next = &buf[i + 1..];
            if next.starts_with(b"\r\n") {
                return Some((i + 1, i + 3));
            }
            if next.starts_with(b"\n") {
                return Some((i + 1, i + 2));
            }
        }
        i += 1;
    }
    None
}

/// Splits the head into logical lines, joining folded continuation lines with one space.
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(raw.trim_start_matches([' ', '\t']));
                continue;
            }
        }
        lines.push(raw.to_string());
    }
    lines
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/") {
        let mut it = rest.splitn(3, ' ');
        let (version, code, reason) = (
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next(),
        );
        if version != "2.0" {
            return Err(ParseError {
                status: 505,
                reason: "Version Not Supported".into(),
            });
        }
        let code = code
            .parse::<u16>()
            .ok()
            .filter(|c| (100..700).contains(c) && code.len() == 3)
            .ok_or_else(|| bad("bad status code"))?;
        return Ok(StartLine::Response {
            code,
            reason: reason.unwrap_or_default().to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces (RFC 4475
    // lwsruri, lwsstart, trws).
    let parts: Vec<&str> = line.split(' ').collect();
    let [method, uri, version] = parts[..] else {
        return Err(bad("malformed request line"));
    };
    if !hdr::is_token(method) {
        return Err(bad("bad method"));
    }
    if !version.starts_with("SIP/") {
        return Err(bad("malformed request line"));
    }
    if version != "SIP/2.0" {
        return Err(ParseError {
            status: 505,
            reason: "Version Not Supported".into(),
        });
    }
    if !hdr::is_uri(uri) {
        return Err(bad("bad Request-URI"));
    }
    let scheme = uri.split(':').next().unwrap_or_default();
    if (scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips"))
        && hdr::has_uri_headers(uri)
    {
        return Err(bad("headers in the Request-URI"));
    }
    Ok(StartLine::Request {
        method: Method::from(method),
        uri: uri.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = include_bytes!("../../tests/fixtures/sipjs/register.txt");

    #[test]
    fn compact_and_folded_headers() {
        let m = SipMsg::parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\nv: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
              v: SIP/2.0/TCP c;branch=z9hG4bK3\r\nf: <sip:a@x>;tag=1\r\nt: <sip:b@y>\r\ni: abc@x\r\nCSEQ: 1\r\n  INVITE\r\n\
              m: <sip:a@1.2.3.4>\r\nl: 4\r\n\r\nbodyEXTRA",
        )
        .unwrap();
        assert_eq!(m.headers_named("Via").count(), 3);
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
        assert_eq!(m.call_id(), "abc@x");
        assert_eq!(m.cseq().seq, 1);
        assert_eq!(m.body, b"body");
        assert_eq!(m.header("contact"), Some("<sip:a@1.2.3.4>"));
    }

    #[test]
    fn cr_lf_and_nul_are_refused_even_after_a_backslash() {
        let head = "OPTIONS sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:gw>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n";
        for bad in ["\\\r", "\\\0", "\r", "\0", "\\\n"] {
            let m = format!("{head}X-Note: a{bad}b\r\n\r\n");
            let e = SipMsg::parse(m.as_bytes()).unwrap_err();
            assert_eq!(e.status, 400, "{bad:?}");
        }
        // Other control characters stay legal as quoted-pairs (RFC 4475 §3.1.1.3).
        let ok = format!("{head}X-Note: \"a\\\x07b\"\r\n\r\n");
        assert!(SipMsg::parse(ok.as_bytes()).is_ok());
    }

    #[test]
    fn sipjs_register_round_trips() {
        let m = SipMsg::parse(REGISTER).unwrap();
        assert_eq!(m.method(), Some(&Method::Register));
        let again = SipMsg::parse(&m.to_bytes()).unwrap();
        assert_eq!(m, again);
    }

    #[test]
    fn response_copies_the_transaction_headers() {
        let m = SipMsg::parse(REGISTER).unwrap();
        let r = m.response(401, "Unauthorized", Some("abc"));
        assert_eq!(r.status(), Some(401));
        assert_eq!(r.header("Call-ID"), m.header("Call-ID"));
        assert!(r.header("To").unwrap().ends_with(";tag=abc"));
        let bytes = r.to_bytes();
        assert!(
            SipMsg::parse(&bytes).is_ok(),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn error_responses_need_the_routing_headers() {
        let raw = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n";
        let e = SipMsg::parse(raw).unwrap_err();
        assert_eq!(e.status, 400);
        let r = error_response_for(raw, &e, "t1").unwrap();
        let r = SipMsg::parse(&r).unwrap();
        assert_eq!(r.status(), Some(400));
        assert!(r.header("To").unwrap().contains("tag=t1"));
        assert!(error_response_for(b"garbage\r\n\r\n", &e, "t").is_none());
    }

    #[test]
    fn limits() {
        let big = vec![b'a'; MAX_MESSAGE_BYTES + 1];
        assert_eq!(SipMsg::parse(&big).unwrap_err().status, 513);
        let mut many = b"OPTIONS sip:x@y SIP/2.0\r\n".to_vec();
        for i in 0..300 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(SipMsg::parse(&many).unwrap_err().status, 400);
    }
}
