//! The B2BUA's vocabulary, shared by the core and its calls (and read by the transports):
//! who a message comes from or goes to, what the core reports, its configuration. Pure.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use engine::api::{SessionId, SessionStats};

use super::policy::AcceptList;
use super::route::StaticRoute;
use crate::sdp::pts::PtFilter;
use crate::sip::txn::TimerValues;

/// The name SIP uses for a WebSocket connection: `<uuid v4>.invalid`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnName(pub String);

impl ConnName {
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        // The OpenSSL CSPRNG only fails when it cannot seed, which start-up already exercised.
        openssl::rand::rand_bytes(&mut b).expect("OpenSSL RNG seeded at start-up");
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        ConnName(format!(
            "{}-{}-{}-{}-{}.invalid",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }
}

impl std::fmt::Display for ConnName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a message came from or goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Ws(ConnName),
    Udp(SocketAddr),
}

impl Peer {
    /// The transport label used in metrics.
    pub fn transport(&self) -> &'static str {
        match self {
            Peer::Ws(_) => "ws",
            Peer::Udp(_) => "udp",
        }
    }

    /// WebSocket is reliable: no retransmissions.
    pub fn is_reliable(&self) -> bool {
        matches!(self, Peer::Ws(_))
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: Peer,
    pub bytes: Vec<u8>,
}

/// What happened, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreEvent {
    /// A request that did not parse was answered with this status.
    Rejected {
        transport: &'static str,
        status: u16,
        reason: String,
    },
    /// A message that did not parse and could not be answered, or that matched nothing.
    Dropped {
        transport: &'static str,
        reason: String,
    },
    /// A message shed for safety (rate, source, budget), by reason: `rate_limited`,
    /// `response_source`, `not_a_peer`, `refusal_budget`, `too_large_answer`.
    Shed { reason: ShedReason },
    /// A new call refused by a limit: `per_connection`, `per_address`, `total`,
    /// `transactions`.
    CallRefused { reason: RefusalReason },
    /// A response was sent with this status.
    Responded { status: u16 },
    /// A REGISTER ended: status from the registrar (or the demo PBX), lifetime granted.
    Registration {
        aor: String,
        conn: String,
        status: u16,
        expires: u32,
    },
    CallStarted {
        call_id: String,
        from: String,
        to: String,
    },
    CallAnswered {
        id: SessionId,
        /// INVITE received to 2xx sent.
        setup: Duration,
    },
    /// A call is over, with the engine's final media figures when it had a session: one log
    /// line per call.
    CallEnded(CallRecord),
    /// Something the media engine reported (`ice_connected`, `dtls_connected`, `dtls_failed`,
    /// `consent_lost`, `media_timeout`).
    Media { event: &'static str },
    /// The engine's final figures for a session no call waited for (a session torn down on its
    /// own).
    MediaStats { id: SessionId, stats: SessionStats },
}

/// What is known of a call when it is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: SessionId,
    pub call_id: String,
    pub from: String,
    pub to: String,
    pub outcome: EndReason,
    pub status: u16,
    pub by: HungUpBy,
    pub duration: Duration,
    pub answered: bool,
    /// Per leg (A = the caller's side): packets, bytes, loss, jitter. `None` when the engine
    /// had no session for it (allocation failed or never answered).
    pub media: Option<SessionStats>,
}

/// Methods this gateway answers or relays.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, MESSAGE, NOTIFY, REGISTER, SUBSCRIBE";

/// The core's view of the configuration.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Host the gateway puts in its Via, Path and Contact (the advertise address).
    pub own_host: String,
    /// The SIP/UDP port actually bound.
    pub sip_port: u16,
    /// The outbound proxy's addresses; `None` runs the demo PBX registrar.
    pub proxy: Option<Vec<SocketAddr>>,
    pub timers: TimerValues,
    /// Where browser calls go (None: the demo PBX).
    pub route: Option<StaticRoute>,
    pub accept: AcceptList,
    pub pts: PtFilter,
    /// The address put in SDP.
    pub advertise: IpAddr,
    pub limits: Limits,
}

/// What one source, one connection and the whole gateway may hold or send.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// SIP/UDP messages per second from one source address (bursts of twice that).
    pub sip_udp_rate: u32,
    /// The same for the outbound proxy's and the route's addresses.
    pub sip_proxy_rate: u32,
    /// Live transactions; new requests beyond get 503.
    pub max_transactions: usize,
    /// Calls in progress in all.
    pub max_calls: usize,
    /// Calls in progress on one WebSocket connection (as caller or callee).
    pub max_calls_per_ws: usize,
    /// Calls in progress from one client address (IPv6: one /64).
    pub max_calls_per_ip: usize,
    /// An unanswered call ends after this long (408 to the caller, CANCEL to the callee).
    pub no_answer_timeout: Duration,
    /// Demo PBX bindings.
    pub max_registrations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sip_udp_rate: 100,
            sip_proxy_rate: 10_000,
            max_transactions: 20_000,
            max_calls: 5_000,
            max_calls_per_ws: 4,
            max_calls_per_ip: 64,
            no_answer_timeout: Duration::from_secs(60),
            max_registrations: 10_000,
        }
    }
}

impl CoreConfig {
    pub fn own_hostport(&self) -> String {
        format!("{}:{}", self.own_host, self.sip_port)
    }
}

pub use crate::sip::names::ServerKey;

/// Why an in-dialog request found no dialog to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogMiss {
    /// No such dialog, or the From-tag is not the dialog's: 481.
    NoDialog,
    /// The dialog exists but the sender is not its peer: no answer at all.
    NotAPeer,
}

/// An enum of named reasons: its variants, their text (log lines, metric labels, SIP Reason
/// headers) and a fixed counter array indexed by it.
macro_rules! reasons {
    ($(#[$doc:meta])* $t:ident { $($(#[$vdoc:meta])* $v:ident => $s:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $t { $($(#[$vdoc])* $v,)+ }

        impl $t {
            /// Every variant, in counter order.
            pub const ALL: &'static [$t] = &[$($t::$v,)+];
            /// How many variants (the length of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            pub const fn as_str(self) -> &'static str {
                match self { $($t::$v => $s,)+ }
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

reasons!(
    /// Who ended a call.
    HungUpBy {
        Caller => "caller",
        Callee => "callee",
        Gateway => "gateway",
    }
);

reasons!(
    /// Why a call ended: its log line's `outcome`, and the Reason of the BYE or final response
    /// the gateway sends when it ends the call itself.
    EndReason {
        HungUp => "hung up",
        HungUpBeforeAnswer => "hung up before the answer",
        Cancelled => "cancelled",
        Rejected => "rejected",
        Challenged => "challenged",
        NoAnswer => "no answer",
        NoAnswerTimeout => "no answer (NO_ANSWER_TIMEOUT)",
        NoReply => "no reply (nr_expires)",
        NoProgress => "no progress (np_expires)",
        NotConnected => "not connected in time (expires)",
        CreditTime => "maximum call length (credit-time)",
        SessionTimerExpired => "session timer expired",
        SessionRefreshFailed => "session refresh failed",
        SdpNotAcceptable => "SDP not acceptable",
        MediaAllocationFailed => "media allocation failed",
        MediaTimeout => "media timeout",
        DtlsFailed => "DTLS failed",
        ConsentLost => "ICE consent lost",
        MediaSessionFailed => "media session failed",
        WebSocketClosed => "WebSocket closed",
        NoAck => "no ACK",
        ShuttingDown => "gateway shutting down",
    }
);

reasons!(
    /// Why a message was shed unanswered, for safety.
    ShedReason {
        RateLimited => "rate_limited",
        ResponseSource => "response_source",
        NotAPeer => "not_a_peer",
        RefusalBudget => "refusal_budget",
        TooLargeAnswer => "too_large_answer",
    }
);

reasons!(
    /// Which limit refused a new call.
    RefusalReason {
        PerConnection => "per_connection",
        PerAddress => "per_address",
        Total => "total",
        Transactions => "transactions",
    }
);

/// Counts per reason: a fixed array indexed by the reason (no map, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShedCounts(pub [u64; ShedReason::COUNT]);

impl ShedCounts {
    pub fn count(&mut self, r: ShedReason) {
        self.0[r as usize] += 1;
    }

    pub fn get(&self, r: ShedReason) -> u64 {
        self.0[r as usize]
    }
}
