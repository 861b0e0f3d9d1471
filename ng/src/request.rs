//! The typed ng request: the keys and flags Kamailio 5.6's `rtpengine` module sends for
//! WebRTC↔SIP calls (notes §3, §7), read leniently.
//!
//! Leniency is the rule a drop-in must copy: Kamailio forwards every `key=value` token it does
//! not recognise as a dictionary entry and every bare token as a flag, so unknown keys, unknown
//! flags and unknown values are collected in [`Request::unknown`] for a log line (see
//! [`SeenOnce`]) and never make the request fail. The only refusal here is a dictionary without
//! a string `command` (rtpengine: "Dictionary contains no key \"command\""). Which keys a command
//! requires (`call-id`, `sdp`, `to-tag`) is the next layer's business, with the reasons in
//! [`crate::response::reason`].
//!
//! Key and flag names are compared after mapping `_` and ` ` to `-`: rtpengine accepts
//! `transport protocol` / `transport-protocol`, `delete delay` / `delete-delay`, `rtpp_flags` /
//! `rtpp-flags` (notes §1). Names stay case-sensitive, as in rtpengine.

use std::collections::HashSet;
use std::net::IpAddr;

use crate::bencode::{Dict, Value};

/// The `command` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Ping,
    Offer,
    Answer,
    Delete,
    Query,
    List,
    /// Any other command (rtpengine's recording, media-playback and pub/sub commands, or junk):
    /// answered "Unrecognized command" until implemented.
    Unknown(String),
}

impl Command {
    fn parse(s: &str) -> Command {
        match s {
            "ping" => Command::Ping,
            "offer" => Command::Offer,
            "answer" => Command::Answer,
            "delete" => Command::Delete,
            "query" => Command::Query,
            "list" => Command::List,
            other => Command::Unknown(other.to_owned()),
        }
    }
}

/// `ICE=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ice {
    /// Strip the peer's ICE data and add ours.
    Force,
    /// Strip all ICE data.
    Remove,
    /// Add ours next to the peer's (rtpengine's default when the offer has ICE).
    Default,
    /// Offer relay candidates only (rtpengine: with TURN); we have none.
    ForceRelay,
    /// Add ICE only if the other side used it.
    Optional,
}

/// `transport-protocol`: the profile of the outgoing SDP's `m=` lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportProtocol {
    RtpAvp,
    RtpSavp,
    RtpAvpf,
    RtpSavpf,
    UdpTlsRtpSavp,
    UdpTlsRtpSavpf,
}

impl TransportProtocol {
    /// The SDP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportProtocol::RtpAvp => "RTP/AVP",
            TransportProtocol::RtpSavp => "RTP/SAVP",
            TransportProtocol::RtpAvpf => "RTP/AVPF",
            TransportProtocol::RtpSavpf => "RTP/SAVPF",
            TransportProtocol::UdpTlsRtpSavp => "UDP/TLS/RTP/SAVP",
            TransportProtocol::UdpTlsRtpSavpf => "UDP/TLS/RTP/SAVPF",
        }
    }

    fn parse(s: &str) -> Option<TransportProtocol> {
        [
            TransportProtocol::RtpAvp,
            TransportProtocol::RtpSavp,
            TransportProtocol::RtpAvpf,
            TransportProtocol::RtpSavpf,
            TransportProtocol::UdpTlsRtpSavp,
            TransportProtocol::UdpTlsRtpSavpf,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

/// `DTLS=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtls {
    /// Prefer the server role (`a=setup:passive` in answers).
    Passive,
    /// Prefer the client role (rtpengine's default).
    Active,
    /// No DTLS (`off`, `no`, `disable`, `disabled`).
    Off,
}

/// `rtcp-mux: [...]` (Kamailio's `rtcp-mux-X` tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtcpMux {
    pub offer: bool,
    pub require: bool,
    pub demux: bool,
    pub accept: bool,
    pub reject: bool,
}

/// `replace: [...]` (Kamailio's `replace-X` tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replace {
    /// Our address in `o=`.
    pub origin: bool,
    /// Our address in the session-level `c=`; rtpengine always does this now, the value stays
    /// accepted.
    pub session_connection: bool,
}

/// The codec operations, from the `codec` dictionary and from `codec-X-<name>` flags. Each
/// list holds codec names (`PCMU`, `opus`, `all`, `PCMA/8000`) in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodecOps {
    pub strip: Vec<String>,
    pub mask: Vec<String>,
    pub offer: Vec<String>,
    pub except: Vec<String>,
    pub accept: Vec<String>,
    pub consume: Vec<String>,
    pub set: Vec<String>,
    pub transcode: Vec<String>,
}

impl CodecOps {
    fn list_mut(&mut self, op: &str) -> Option<&mut Vec<String>> {
        Some(match op {
            "strip" => &mut self.strip,
            "mask" => &mut self.mask,
            "offer" => &mut self.offer,
            "except" => &mut self.except,
            "accept" => &mut self.accept,
            "consume" => &mut self.consume,
            "set" => &mut self.set,
            "transcode" => &mut self.transcode,
            _ => return None,
        })
    }

    /// Whether no operation was asked for.
    pub fn is_empty(&self) -> bool {
        *self == CodecOps::default()
    }
}

/// The bare flags we give meaning to (`flags: [...]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub trust_address: bool,
    pub sip_source_address: bool,
    pub symmetric: bool,
    pub asymmetric: bool,
    pub strict_source: bool,
    pub media_handover: bool,
    pub port_latching: bool,
    pub generate_mid: bool,
    pub trickle_ice: bool,
    pub no_rtcp_attribute: bool,
    pub full_rtcp_attribute: bool,
    pub loop_protect: bool,
    pub unidirectional: bool,
    pub webrtc: bool,
    /// `delete`: an unknown call is an error, not `ok` with a warning.
    pub fatal: bool,
    /// `offer` from `rtpengine_info`: a trickle-ICE fragment, no SDP back.
    pub fragment: bool,
    /// `delete`: omit the statistics from the reply.
    pub fast: bool,
}

impl Flags {
    fn set(&mut self, name: &str) -> bool {
        let f = match name {
            "trust-address" => &mut self.trust_address,
            "SIP-source-address" => &mut self.sip_source_address,
            "symmetric" => &mut self.symmetric,
            "asymmetric" => &mut self.asymmetric,
            "strict-source" => &mut self.strict_source,
            "media-handover" => &mut self.media_handover,
            "port-latching" => &mut self.port_latching,
            "generate-mid" => &mut self.generate_mid,
            "trickle-ICE" => &mut self.trickle_ice,
            "no-rtcp-attribute" => &mut self.no_rtcp_attribute,
            "full-rtcp-attribute" => &mut self.full_rtcp_attribute,
            "loop-protect" => &mut self.loop_protect,
            "unidirectional" => &mut self.unidirectional,
            "WebRTC" => &mut self.webrtc,
            "fatal" => &mut self.fatal,
            "fragment" => &mut self.fragment,
            "fast" => &mut self.fast,
            _ => return false,
        };
        *f = true;
        true
    }
}

/// `received-from: [family, address]`: where Kamailio got the SIP message from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedFrom {
    /// `IP4` or `IP6` as sent.
    pub family: String,
    pub address: IpAddr,
}

/// Something in the request we do not act on, kept for one log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// A dictionary key we do not know.
    Key(String),
    /// A bare flag we do not know.
    Flag(String),
    /// A key we know whose value we do not understand (wrong type or unknown value).
    Value { key: String, value: String },
}

impl Unknown {
    /// The name to log once: the key, the flag, or `key=value`.
    pub fn name(&self) -> String {
        match self {
            Unknown::Key(k) | Unknown::Flag(k) => k.clone(),
            Unknown::Value { key, value } => format!("{key}={value}"),
        }
    }
}

/// Why a dictionary is not a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// rtpengine: "Dictionary contains no key \"command\"".
    #[error("no command")]
    NoCommand,
}

/// One ng request, typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub command: Option<Command>,
    pub call_id: Option<Vec<u8>>,
    pub from_tag: Option<Vec<u8>>,
    pub to_tag: Option<Vec<u8>>,
    pub via_branch: Option<Vec<u8>>,
    pub label: Option<Vec<u8>>,
    pub sdp: Option<Vec<u8>>,
    pub ice: Option<Ice>,
    pub transport_protocol: Option<TransportProtocol>,
    pub dtls: Option<Dtls>,
    /// `SDES: [off]` (also `no`, `disable`, `disabled`, and the `SDES-off` flag): we never do
    /// SDES, so this only decides whether stripping `a=crypto` is silent.
    pub sdes_off: bool,
    pub rtcp_mux: RtcpMux,
    pub replace: Replace,
    /// `direction: [...]`: interface names, in leg order.
    pub direction: Vec<String>,
    pub received_from: Option<ReceivedFrom>,
    pub media_address: Option<IpAddr>,
    pub address_family: Option<String>,
    pub codec: CodecOps,
    pub flags: Flags,
    /// `supports` lists `load limit`: capacity refusals may answer `result: load limit`.
    pub supports_load_limit: bool,
    /// `delete delay` in seconds.
    pub delete_delay: Option<i64>,
    /// `limit` for `list`.
    pub limit: Option<i64>,
    /// Everything ignored, in request order (keys sorted, flags as listed).
    pub unknown: Vec<Unknown>,
}

fn normalise(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .map(|c| if c == '_' || c == ' ' { '-' } else { c })
        .collect()
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::List(_) => "<list>".into(),
        Value::Dict(_) => "<dictionary>".into(),
    }
}

/// A string value, or each string of a list value (rtpengine takes both for list keys).
fn strings(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Bytes(b) => Some(vec![String::from_utf8_lossy(b).into_owned()]),
        Value::List(items) => items
            .iter()
            .map(|i| {
                i.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            })
            .collect(),
        _ => None,
    }
}

/// An integer, or a string holding one (Kamailio sends `delete-delay=N` as an integer, other
/// clients as text).
fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

impl Request {
    /// Reads a request dictionary. Fails only without a string `command`.
    pub fn from_dict(dict: &Dict) -> Result<Request, RequestError> {
        let mut r = Request::default();
        for (raw_key, v) in dict {
            let key = normalise(raw_key);
            if !r.read(&key, v) {
                r.unknown.push(Unknown::Value {
                    key,
                    value: describe(v),
                });
            }
        }
        if r.command.is_none() {
            return Err(RequestError::NoCommand);
        }
        Ok(r)
    }

    /// Applies one key. `false`: the key is known but its value is not understood.
    fn read(&mut self, key: &str, v: &Value) -> bool {
        let bytes = || v.as_bytes().map(<[u8]>::to_vec);
        match key {
            "command" => {
                let Some(c) = v.as_bytes() else {
                    return false;
                };
                self.command = Some(Command::parse(&String::from_utf8_lossy(c)));
            }
            "call-id" => return set(&mut self.call_id, bytes()),
            "from-tag" => return set(&mut self.from_tag, bytes()),
            "to-tag" => return set(&mut self.to_tag, bytes()),
            "via-branch" => return set(&mut self.via_branch, bytes()),
            "label" => return set(&mut self.label, bytes()),
            "sdp" => return set(&mut self.sdp, bytes()),
            "ICE" => {
                let ice = match v.as_bytes() {
                    Some(b"force") => Ice::Force,
                    Some(b"remove") => Ice::Remove,
                    Some(b"default") => Ice::Default,
                    Some(b"force-relay" | b"force_relay") => Ice::ForceRelay,
                    Some(b"optional") => Ice::Optional,
                    _ => return false,
                };
                self.ice = Some(ice);
            }
            "transport-protocol" => {
                return set(
                    &mut self.transport_protocol,
                    v.as_str().and_then(TransportProtocol::parse),
                )
            }
            "DTLS" => {
                let dtls = match v.as_bytes() {
                    Some(b"passive") => Dtls::Passive,
                    Some(b"active") => Dtls::Active,
                    Some(b"off" | b"no" | b"disable" | b"disabled") => Dtls::Off,
                    _ => return false,
                };
                self.dtls = Some(dtls);
            }
            "SDES" => return self.each(key, v, Request::sdes),
            "rtcp-mux" => return self.each(key, v, Request::rtcp_mux_item),
            "replace" => return self.each(key, v, Request::replace_item),
            "direction" => {
                let Some(d) = strings(v) else { return false };
                self.direction = d;
            }
            "received-from" => {
                let parsed = match v.as_list() {
                    Some([Value::Bytes(f), Value::Bytes(a)]) => std::str::from_utf8(a)
                        .ok()
                        .and_then(|a| a.parse().ok())
                        .map(|address| ReceivedFrom {
                            family: String::from_utf8_lossy(f).into_owned(),
                            address,
                        }),
                    _ => None,
                };
                return set(&mut self.received_from, parsed);
            }
            "media-address" => {
                return set(
                    &mut self.media_address,
                    v.as_str().and_then(|s| s.parse().ok()),
                )
            }
            "address-family" => {
                return set(&mut self.address_family, v.as_str().map(str::to_owned))
            }
            "codec" => return self.codec_dict(v),
            "flags" => {
                let Some(flags) = strings(v) else {
                    return false;
                };
                for f in flags {
                    self.flag(&f);
                }
            }
            "supports" => {
                let Some(s) = strings(v) else { return false };
                for item in s {
                    if item == "load limit" {
                        self.supports_load_limit = true;
                    } else {
                        self.unknown.push(Unknown::Value {
                            key: "supports".into(),
                            value: item,
                        });
                    }
                }
            }
            "delete-delay" => return set(&mut self.delete_delay, integer(v)),
            "limit" => return set(&mut self.limit, integer(v)),
            _ => self.unknown.push(Unknown::Key(key.to_owned())),
        }
        true
    }

    /// Applies `item` to each string of a list (or a lone string); unknown items are collected.
    fn each(&mut self, key: &str, v: &Value, item: fn(&mut Request, &str) -> bool) -> bool {
        let Some(items) = strings(v) else {
            return false;
        };
        for i in items {
            if !item(self, &i) {
                self.unknown.push(Unknown::Value {
                    key: key.to_owned(),
                    value: i,
                });
            }
        }
        true
    }

    fn sdes(&mut self, item: &str) -> bool {
        match item {
            "off" | "no" | "disable" | "disabled" => self.sdes_off = true,
            _ => return false,
        }
        true
    }

    fn rtcp_mux_item(&mut self, item: &str) -> bool {
        let m = &mut self.rtcp_mux;
        let f = match item {
            "offer" => &mut m.offer,
            "require" => &mut m.require,
            "demux" => &mut m.demux,
            "accept" => &mut m.accept,
            "reject" => &mut m.reject,
            _ => return false,
        };
        *f = true;
        true
    }

    fn replace_item(&mut self, item: &str) -> bool {
        match item {
            "origin" => self.replace.origin = true,
            "session-connection" | "session_connection" => self.replace.session_connection = true,
            _ => return false,
        }
        true
    }

    /// `codec: {strip: [...], mask: [...], ...}`.
    fn codec_dict(&mut self, v: &Value) -> bool {
        let Some(d) = v.as_dict() else { return false };
        for (op, names) in d {
            let op = normalise(op);
            match (self.codec.list_mut(&op), strings(names)) {
                (Some(list), Some(names)) => list.extend(names),
                _ => self.unknown.push(Unknown::Value {
                    key: format!("codec.{op}"),
                    value: describe(names),
                }),
            }
        }
        true
    }

    /// One entry of `flags`, already normalised. Besides the bare flags, rtpengine reads
    /// prefixed forms that Kamailio passes through as flags: `codec-strip-PCMA`,
    /// `codec-accept-opus` (the 5.6 workaround for `codec-accept=`), `transcode-X`,
    /// `replace-origin`, `rtcp-mux-demux`, `SDES-off`.
    ///
    /// `raw` is the flag as sent: the codec name keeps its spelling (`G722_1` stays), only the
    /// flag part is normalised.
    fn flag(&mut self, raw: &str) {
        let f = normalise(raw.as_bytes());
        let f = f.as_str();
        if self.flags.set(f) {
            return;
        }
        // The tail of `raw` matching `tail` of `f` (normalising keeps byte lengths).
        let original = |tail: &str| raw[raw.len() - tail.len()..].to_owned();
        let handled = if let Some(rest) = f.strip_prefix("codec-") {
            // `codec-strip-X`: the op is the first `-`-separated word, the codec the rest.
            match rest.split_once('-') {
                Some((op, name)) if !name.is_empty() => match self.codec.list_mut(op) {
                    Some(list) => {
                        list.push(original(name));
                        true
                    }
                    None => false,
                },
                _ => false,
            }
        } else if let Some(name) = f.strip_prefix("transcode-").filter(|n| !n.is_empty()) {
            self.codec.transcode.push(original(name));
            true
        } else if let Some(item) = f.strip_prefix("replace-") {
            self.replace_item(item)
        } else if let Some(item) = f.strip_prefix("rtcp-mux-") {
            self.rtcp_mux_item(item)
        } else if let Some(item) = f.strip_prefix("SDES-") {
            self.sdes(item)
        } else {
            false
        };
        if !handled {
            self.unknown.push(Unknown::Flag(raw.to_owned()));
        }
    }
}

/// Stores `value` if there is one; `false` if the value was not understood.
fn set<T>(slot: &mut Option<T>, value: Option<T>) -> bool {
    match value {
        Some(v) => {
            *slot = Some(v);
            true
        }
        None => false,
    }
}

/// Names already logged, so each unknown key or flag is logged once per process rather than
/// once per request. Bounded: past `capacity` names every further name reports "seen", so a
/// client inventing names cannot grow memory (the log line is lost, nothing else).
#[derive(Debug)]
pub struct SeenOnce {
    seen: HashSet<String>,
    capacity: usize,
}

impl SeenOnce {
    /// A set remembering at most `capacity` names.
    pub fn new(capacity: usize) -> SeenOnce {
        SeenOnce {
            seen: HashSet::new(),
            capacity,
        }
    }

    /// Whether `name` is new (log it now); remembers it.
    pub fn is_first(&mut self, name: &str) -> bool {
        if self.seen.len() >= self.capacity || self.seen.contains(name) {
            return false;
        }
        self.seen.insert(name.to_owned());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::decode;

    fn req(wire: &[u8]) -> Request {
        let v = decode(wire).unwrap();
        Request::from_dict(v.as_dict().unwrap()).unwrap()
    }

    /// `rtpengine_offer("replace-origin replace-session-connection ICE=force
    /// UDP/TLS/RTP/SAVPF rtcp-mux-offer rtcp-mux-require SDES-off")` as Kamailio 5.6 sends it
    /// (notes §3), toward the browser.
    const KAMAILIO_OFFER_TO_BROWSER: &[u8] = b"d7:command5:offer3:sdp3:v=0\
        7:call-id12:c1@127.0.0.18:from-tag3:ft1\
        13:received-froml3:IP49:127.0.0.1e8:supportsl10:load limite\
        7:replacel6:origin18:session-connectione3:ICE5:force\
        18:transport-protocol17:UDP/TLS/RTP/SAVPF8:rtcp-muxl5:offer7:requiree4:SDESl3:offee";

    /// The browser's 200 OK through `rtpengine_answer("replace-origin
    /// replace-session-connection ICE=remove RTP/AVP rtcp-mux-demux SDES-off")`, with the
    /// edge's flags `trust-address` and a `codec-strip-X` flag form.
    const KAMAILIO_ANSWER_TO_SIP: &[u8] = b"d7:command6:answer3:sdp3:v=0\
        7:call-id12:c1@127.0.0.18:from-tag3:ft16:to-tag3:tt1\
        13:received-froml3:IP49:127.0.0.1e8:supportsl10:load limite\
        7:replacel6:origin18:session-connectione3:ICE6:remove\
        18:transport-protocol7:RTP/AVP8:rtcp-muxl5:demuxe4:SDESl3:offe\
        5:flagsl13:trust-address16:codec-strip-G72212:generate-mid10:frobnicatee\
        10:via-branch4:z9hGe";

    #[test]
    fn kamailio_offer_toward_the_browser() {
        let r = req(KAMAILIO_OFFER_TO_BROWSER);
        assert_eq!(r.command, Some(Command::Offer));
        assert_eq!(r.call_id.as_deref(), Some(&b"c1@127.0.0.1"[..]));
        assert_eq!(r.from_tag.as_deref(), Some(&b"ft1"[..]));
        assert_eq!(r.to_tag, None);
        assert_eq!(r.sdp.as_deref(), Some(&b"v=0"[..]));
        assert_eq!(r.ice, Some(Ice::Force));
        assert_eq!(
            r.transport_protocol,
            Some(TransportProtocol::UdpTlsRtpSavpf)
        );
        assert_eq!(
            r.rtcp_mux,
            RtcpMux {
                offer: true,
                require: true,
                ..RtcpMux::default()
            }
        );
        assert!(r.replace.origin && r.replace.session_connection);
        assert!(r.sdes_off);
        assert!(r.supports_load_limit);
        let from = r.received_from.unwrap();
        assert_eq!(from.family, "IP4");
        assert_eq!(from.address, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(r.unknown, vec![]);
    }

    #[test]
    fn kamailio_answer_toward_sip() {
        let r = req(KAMAILIO_ANSWER_TO_SIP);
        assert_eq!(r.command, Some(Command::Answer));
        assert_eq!(r.to_tag.as_deref(), Some(&b"tt1"[..]));
        assert_eq!(r.via_branch.as_deref(), Some(&b"z9hG"[..]));
        assert_eq!(r.ice, Some(Ice::Remove));
        assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpAvp));
        assert!(r.rtcp_mux.demux && !r.rtcp_mux.offer);
        assert!(r.flags.trust_address && r.flags.generate_mid);
        assert_eq!(r.codec.strip, vec!["G722"]);
        assert_eq!(r.unknown, vec![Unknown::Flag("frobnicate".into())]);
    }

    #[test]
    fn codec_dictionary_and_flag_forms_merge() {
        let r = req(
            b"d7:command5:offer5:codecd5:stripl4:PCMA4:G722e4:maskl4:opuse\
            6:offerxl1:xee5:flagsl17:codec-accept-opus16:codec-except-all12:transcode-G9\
            13:codec-bogus-x6:codec-ee",
        );
        assert_eq!(r.codec.strip, vec!["PCMA", "G722"]);
        assert_eq!(r.codec.mask, vec!["opus"]);
        assert_eq!(r.codec.accept, vec!["opus"]);
        assert_eq!(r.codec.except, vec!["all"]);
        assert_eq!(r.codec.transcode, vec!["G9"]);
        assert_eq!(
            r.unknown,
            vec![
                Unknown::Value {
                    key: "codec.offerx".into(),
                    value: "<list>".into()
                },
                Unknown::Flag("codec-bogus-x".into()),
                Unknown::Flag("codec-".into()),
            ]
        );
    }

    #[test]
    fn codec_names_keep_their_spelling() {
        // Only the flag part is normalised: `codec_strip_G722_1` strips `G722_1`.
        let r = req(b"d7:command5:offer5:flagsl18:codec_strip_G722_1ee");
        assert_eq!(r.codec.strip, vec!["G722_1"]);
        assert_eq!(r.unknown, vec![]);
    }

    #[test]
    fn every_flag_kamailio_sends_is_read() {
        let r = req(
            b"d7:command5:offer5:flagsl13:trust-address18:SIP-source-address\
            9:symmetric10:asymmetric13:strict-source13:port-latching12:generate-mid\
            11:trickle-ICE14:media-handover17:no-rtcp-attribute19:full-rtcp-attribute\
            12:loop-protect14:unidirectional6:WebRTC5:fatal8:fragment4:fast\
            14:replace-origin15:rtcp-mux-accept8:SDES-offee",
        );
        assert_eq!(r.unknown, vec![]);
        let f = r.flags;
        assert!(
            f.trust_address
                && f.sip_source_address
                && f.symmetric
                && f.asymmetric
                && f.strict_source
                && f.port_latching
                && f.generate_mid
                && f.trickle_ice
                && f.media_handover
                && f.no_rtcp_attribute
                && f.full_rtcp_attribute
                && f.loop_protect
                && f.unidirectional
                && f.webrtc
                && f.fatal
                && f.fragment
                && f.fast
        );
        assert!(r.replace.origin && r.rtcp_mux.accept && r.sdes_off);
    }

    #[test]
    fn key_spellings_and_values() {
        let r = req(
            b"d7:command6:delete12:delete delayi0e18:transport protocol8:RTP/SAVP\
            4:DTLS7:passive13:media-address8:10.0.0.15:limit2:109:direction\
            l4:priv3:pube5:label3:cale",
        );
        assert_eq!(r.command, Some(Command::Delete));
        assert_eq!(r.delete_delay, Some(0));
        assert_eq!(r.transport_protocol, Some(TransportProtocol::RtpSavp));
        assert_eq!(r.dtls, Some(Dtls::Passive));
        assert_eq!(r.media_address, Some(IpAddr::from([10, 0, 0, 1])));
        assert_eq!(r.limit, Some(10));
        assert_eq!(r.direction, vec!["priv", "pub"]);
        assert_eq!(r.label.as_deref(), Some(&b"cal"[..]));
        assert_eq!(r.unknown, vec![]);
    }

    #[test]
    fn unknown_keys_and_values_never_fail() {
        let r = req(b"d7:command5:query3:ICE5:maybe3:TOSi184e\
            18:transport-protocol3:RTP13:media-address6:nohost\
            13:received-froml3:IP4e8:supportsl10:load limit5:othere7:call-idi7ee");
        assert_eq!(r.command, Some(Command::Query));
        assert_eq!(r.ice, None);
        assert_eq!(r.transport_protocol, None);
        assert_eq!(r.call_id, None);
        let names: Vec<String> = r.unknown.iter().map(Unknown::name).collect();
        assert_eq!(
            names,
            [
                "ICE=maybe",
                "TOS",
                "call-id=7",
                "media-address=nohost",
                "received-from=<list>",
                "supports=other",
                "transport-protocol=RTP",
            ]
        );
        assert!(r.supports_load_limit);
    }

    #[test]
    fn commands() {
        for (c, want) in [
            (&b"ping"[..], Command::Ping),
            (b"list", Command::List),
            (b"play media", Command::Unknown("play media".into())),
        ] {
            let mut d = Dict::new();
            d.insert(b"command".to_vec(), Value::Bytes(c.to_vec()));
            assert_eq!(Request::from_dict(&d).unwrap().command, Some(want));
        }
        let mut d = Dict::new();
        assert_eq!(Request::from_dict(&d), Err(RequestError::NoCommand));
        d.insert(b"command".to_vec(), Value::Int(1));
        assert_eq!(Request::from_dict(&d), Err(RequestError::NoCommand));
    }

    #[test]
    fn seen_once_is_bounded() {
        let mut s = SeenOnce::new(2);
        assert!(s.is_first("a"));
        assert!(!s.is_first("a"));
        assert!(s.is_first("b"));
        assert!(!s.is_first("c"));
    }
}
