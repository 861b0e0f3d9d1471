//! Every refusal the gateway makes, by class, and the one table that gives each its SIP status.
//! Code says what went wrong (`SipError::OfferPending`), never a bare number.

/// The four kinds of refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The message is broken.
    Malformed,
    /// A well-formed message that breaks the protocol's rules for the state it meets.
    PeerMisbehaved,
    /// Something this gateway does not do.
    Incompatible,
    /// Something it will not do, or cannot now (limits, routing, draining).
    Policy,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipError {
    /// Malformed: a body or header that cannot be read (400).
    BadRequest,
    /// Malformed: Max-Forwards ran out (483).
    TooManyHops,
    /// Peer misbehaved: no such dialog or transaction (481).
    NoSuchDialog,
    /// Peer misbehaved: the CSeq went backwards within a dialog (500, RFC 3261 §12.2.2).
    CseqOutOfOrder,
    /// Peer misbehaved: an offer while another is pending (491, RFC 3261 §14.2).
    OfferPending,
    /// Incompatible: a method this gateway does not take (501).
    NotImplemented,
    /// Incompatible: no offer, or an SDP this gateway cannot use (488).
    NotAcceptableHere,
    /// Incompatible: an internal state that cannot serve the request (500).
    CannotServe,
    /// Policy: this source may not do this (403).
    Forbidden,
    /// Policy: nobody by that name (404).
    UnknownUser,
    /// Policy: the user is known but not reachable now (480).
    Unavailable,
    /// Policy: no route, no upstream, draining or overloaded (503).
    ServiceUnavailable,
    /// Policy: the far end did not answer in time (408).
    Timeout,
    /// Policy: a limit on calls per connection or address (486).
    BusyHere,
    /// Incompatible: an INFO for an Info Package this side does not take (469, RFC 6086).
    BadInfoPackage,
    /// The request was ended before its answer: cancelled, or its dialog hung up (487).
    Terminated,
}

impl SipError {
    /// The table: status code and class of each refusal.
    const fn row(self) -> (u16, ErrorClass) {
        use ErrorClass::*;
        match self {
            SipError::BadRequest => (400, Malformed),
            SipError::TooManyHops => (483, Malformed),
            SipError::NoSuchDialog => (481, PeerMisbehaved),
            SipError::CseqOutOfOrder => (500, PeerMisbehaved),
            SipError::OfferPending => (491, PeerMisbehaved),
            SipError::NotImplemented => (501, Incompatible),
            SipError::NotAcceptableHere => (488, Incompatible),
            SipError::CannotServe => (500, Incompatible),
            SipError::Forbidden => (403, Policy),
            SipError::UnknownUser => (404, Policy),
            SipError::Unavailable => (480, Policy),
            SipError::ServiceUnavailable => (503, Policy),
            SipError::Timeout => (408, Policy),
            SipError::BusyHere => (486, Policy),
            SipError::BadInfoPackage => (469, Incompatible),
            SipError::Terminated => (487, PeerMisbehaved),
        }
    }

    /// The SIP status that says it.
    pub const fn status(self) -> u16 {
        self.row().0
    }

    pub const fn class(self) -> ErrorClass {
        self.row().1
    }
}

impl From<&crate::sdp::translate::TranslateError> for SipError {
    fn from(e: &crate::sdp::translate::TranslateError) -> SipError {
        match e.status() {
            488 => SipError::NotAcceptableHere,
            _ => SipError::BadRequest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_is_a_client_or_server_error_of_its_class() {
        for e in [
            SipError::BadRequest,
            SipError::TooManyHops,
            SipError::NoSuchDialog,
            SipError::CseqOutOfOrder,
            SipError::OfferPending,
            SipError::NotImplemented,
            SipError::NotAcceptableHere,
            SipError::CannotServe,
            SipError::Forbidden,
            SipError::UnknownUser,
            SipError::Unavailable,
            SipError::ServiceUnavailable,
            SipError::Timeout,
            SipError::BusyHere,
            SipError::BadInfoPackage,
            SipError::Terminated,
        ] {
            assert!((400..600).contains(&e.status()), "{e:?}");
        }
        assert_eq!(SipError::OfferPending.status(), 491);
        assert_eq!(SipError::TooManyHops.class(), ErrorClass::Malformed);
        assert_eq!(SipError::Forbidden.class(), ErrorClass::Policy);
    }
}
