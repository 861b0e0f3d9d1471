//! Per-call timers: the static route's `nr_expires`, `np_expires`, `expires` and
//! `credit-time` (seed-system.md §2.4), and RFC 4028 session timers on the SIP leg.

use std::time::{Duration, Instant};

use crate::b2bua::route::RouteParams;
use crate::sip::msg::SipMsg;

/// The timers of one call, a fixed table indexed by [`CallTimer`].
#[derive(Debug, Clone, Default)]
pub(in crate::b2bua) struct CallTimers {
    pub(in crate::b2bua) at: [Option<Instant>; 7],
    /// Session interval negotiated on the SIP leg, and who refreshes.
    pub(in crate::b2bua) session: Option<(Duration, Refresher)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::b2bua) enum CallTimer {
    /// `nr_expires`: no provisional response at all.
    NoReply = 0,
    /// `np_expires`: no 180/183 or answer.
    NoProgress = 1,
    /// `expires`: not connected.
    NotConnected = 2,
    /// `credit-time`: maximum call length.
    Credit = 3,
    /// RFC 4028: time for the gateway to refresh the session.
    Refresh = 4,
    /// RFC 4028: the far end's refresh is overdue.
    SessionExpired = 5,
    /// NO_ANSWER_TIMEOUT: nobody answered (armed when the call starts).
    NoAnswer = 6,
}

impl CallTimer {
    const ALL: [CallTimer; 7] = [
        CallTimer::NoReply,
        CallTimer::NoProgress,
        CallTimer::NotConnected,
        CallTimer::Credit,
        CallTimer::Refresh,
        CallTimer::SessionExpired,
        CallTimer::NoAnswer,
    ];
}

/// RFC 4028 §9: who refreshes the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::b2bua) enum Refresher {
    Gateway,
    FarEnd,
}

/// The session interval the gateway asks for, and the smallest it accepts (RFC 4028 §4).
pub const SESSION_EXPIRES: u32 = 1800;
pub const MIN_SE: u32 = 90;

impl CallTimers {
    pub(in crate::b2bua) fn set(&mut self, t: CallTimer, at: Option<Instant>) {
        self.at[t as usize] = at;
    }

    pub(in crate::b2bua) fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }

    /// The timers due by `now`, disarmed, in table order.
    pub(in crate::b2bua) fn take_due(&mut self, now: Instant) -> Vec<CallTimer> {
        let due: Vec<CallTimer> = CallTimer::ALL
            .into_iter()
            .filter(|t| self.at[*t as usize].is_some_and(|at| at <= now))
            .collect();
        for t in &due {
            self.set(*t, None);
        }
        due
    }

    /// Arms the route's set-up timers when the INVITE goes out on leg B.
    pub(in crate::b2bua) fn start_setup(&mut self, now: Instant, p: &RouteParams) {
        let secs = |v: Option<i64>| {
            v.filter(|s| *s > 0)
                .map(|s| now + Duration::from_secs(s as u64))
        };
        let expires = p.expires.filter(|s| *s > 0);
        // np_expires is ignored if >= expires; nr_expires only if < 32 and below both.
        let np = p.np_expires.filter(|np| expires.is_none_or(|e| np < &e));
        let nr = p
            .nr_expires
            .filter(|nr| *nr < 32 && expires.is_none_or(|e| nr < &e) && np.is_none_or(|n| nr < &n));
        self.set(CallTimer::NotConnected, secs(expires));
        self.set(CallTimer::NoProgress, secs(np));
        self.set(CallTimer::NoReply, secs(nr));
    }

    /// A provisional response arrived on leg B.
    pub(in crate::b2bua) fn on_provisional(&mut self, code: u16) {
        self.set(CallTimer::NoReply, None);
        if code == 180 || code == 183 {
            self.set(CallTimer::NoProgress, None);
        }
    }

    /// The call was answered.
    pub(in crate::b2bua) fn on_answer(&mut self, now: Instant, p: Option<&RouteParams>) {
        for t in [
            CallTimer::NoReply,
            CallTimer::NoProgress,
            CallTimer::NotConnected,
            CallTimer::NoAnswer,
        ] {
            self.set(t, None);
        }
        if let Some(c) = p.and_then(|p| p.credit_time).filter(|c| *c > 0) {
            self.set(CallTimer::Credit, Some(now + Duration::from_secs(c as u64)));
        }
    }

    /// A 2xx on the SIP leg set (or refreshed) the session interval (RFC 4028 §7.2, §9).
    pub(in crate::b2bua) fn on_session(
        &mut self,
        now: Instant,
        interval: Duration,
        refresher: Refresher,
    ) {
        self.session = Some((interval, refresher));
        match refresher {
            Refresher::Gateway => {
                self.set(CallTimer::Refresh, Some(now + interval / 2));
                self.set(CallTimer::SessionExpired, None);
            }
            Refresher::FarEnd => {
                self.set(CallTimer::Refresh, None);
                // §10: BYE at interval - min(32, interval/3) without a refresh.
                let margin = Duration::from_secs(32).min(interval / 3);
                self.set(CallTimer::SessionExpired, Some(now + interval - margin));
            }
        }
    }
}

/// Reads `Session-Expires: <secs>[;refresher=uac|uas]` (compact `x`).
pub(in crate::b2bua) fn session_expires(msg: &SipMsg) -> Option<(u32, Option<String>)> {
    let v = msg.header("Session-Expires")?;
    let (secs, params) = v.split_once(';').unwrap_or((v, ""));
    let secs = secs.trim().parse().ok()?;
    let refresher = params
        .split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("refresher"))
        .map(|(_, v)| v.trim().to_ascii_lowercase());
    Some((secs, refresher))
}
