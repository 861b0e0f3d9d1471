//! A WebRTC leg of a session: its ICE-lite agent, the DTLS endpoint (started once the browser's
//! role and fingerprint are known, and for a client once there is somewhere to send), and the
//! SRTP contexts the handshake yields. The session feeds it datagrams and timers and collects
//! what it has to say as events.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{bad, Stream};
use crate::api::{Event, Failure, LegIndex, LocalLeg, SessionId, Setup, WebRtcRemote};
use crate::proto::dtls::{
    DtlsConfig, DtlsEndpoint, DtlsEvent, DtlsIdentity, DtlsRole, Fingerprint,
};
use crate::proto::entropy::Entropy;
use crate::proto::ice::{IceAgent, IceCredentials, IceEvent};
use crate::proto::srtp::{Direction as SrtpDirection, SrtpError, SrtpSession};
use crate::proto::stats::DropReason;
use crate::proto::wire::RtpHeader;

/// A WebRTC leg: ICE-lite agent, DTLS endpoint once a role and fingerprint are known, SRTP
/// once DTLS is up.
pub(super) struct WebRtcLeg {
    pub(super) local_addr: SocketAddr,
    pub(super) remote: Option<WebRtcRemote>,
    pub(super) remote_fp: Option<Fingerprint>,
    pub(super) ice: IceAgent,
    pub(super) dtls: Option<DtlsEndpoint>,
    pub(super) role: Option<DtlsRole>,
    /// Where DTLS flights go before nomination: the last validated source that sent DTLS.
    pub(super) dtls_peer: Option<SocketAddr>,
    /// DTLS datagrams fed to the endpoint, and how often their source changed: context for a
    /// failure's reason.
    pub(super) dtls_in: u32,
    pub(super) dtls_moves: u32,
    pub(super) srtp_in: Option<SrtpSession>,
    pub(super) srtp_out: Option<SrtpSession>,
}

/// What ICE's events meant for the session.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IceOutcome {
    /// The set of routed sources changed (a nomination, consent lost).
    pub(super) routes_changed: bool,
    /// A pair was nominated: DTLS may start now.
    pub(super) nominated: bool,
}

impl WebRtcLeg {
    /// A leg at `local_addr` with our ICE credentials, and the browser's description when it
    /// came with the allocation (an incoming call's offer).
    pub(super) fn new(
        local_addr: SocketAddr,
        creds: IceCredentials,
        remote: Option<&WebRtcRemote>,
    ) -> Result<Self, Failure> {
        let mut leg = WebRtcLeg {
            local_addr,
            remote: None,
            remote_fp: None,
            ice: IceAgent::new(creds, None),
            dtls: None,
            role: None,
            dtls_peer: None,
            dtls_in: 0,
            dtls_moves: 0,
            srtp_in: None,
            srtp_out: None,
        };
        if let Some(r) = remote {
            leg.remote_fp =
                Some(Fingerprint::parse(&r.fingerprint).map_err(|e| bad(e.to_string()))?);
            leg.role = Some(role_for(r.setup));
            leg.ice.set_remote(creds_of(r));
            leg.remote = Some(r.clone());
        }
        Ok(leg)
    }

    /// The browser's new description: an answer, a re-offer, an ICE restart (new credentials
    /// from `entropy`), a new certificate (a new DTLS association).
    pub(super) fn apply_remote(
        &mut self,
        r: &WebRtcRemote,
        entropy: &mut dyn Entropy,
    ) -> Result<(), Failure> {
        let fp = Fingerprint::parse(&r.fingerprint).map_err(|e| bad(e.to_string()))?;
        let role = match (r.setup, self.role) {
            // A re-offer says actpass; the answerer keeps the role it has (RFC 8842 §5.3).
            (Setup::ActPass, Some(old)) => old,
            (setup, _) => role_for(setup),
        };
        let fp_changed = self.remote_fp.as_ref().is_some_and(|old| *old != fp);
        if self.dtls.is_some() && !fp_changed && self.role.is_some_and(|old| old != role) {
            return Err(bad("DTLS role change after the handshake started"));
        }
        let creds = creds_of(r);
        match self.ice.remote() {
            Some(old) if *old != creds => {
                let fresh =
                    IceCredentials::from_entropy(entropy).map_err(|e| bad(e.to_string()))?;
                self.ice.restart(fresh, creds);
            }
            Some(_) => {}
            None => self.ice.set_remote(creds),
        }
        if fp_changed {
            // A new certificate is a new association (RFC 8842 §5.5): new handshake.
            self.dtls = None;
            self.srtp_in = None;
            self.srtp_out = None;
        }
        self.remote_fp = Some(fp);
        self.role = Some(role);
        self.remote = Some(r.clone());
        Ok(())
    }

    /// What signaling puts in its SDP for this leg.
    pub(super) fn local_leg(&self, identity: &DtlsIdentity) -> LocalLeg {
        LocalLeg::WebRtc {
            addr: self.local_addr,
            ice_ufrag: self.ice.local().ufrag.clone(),
            ice_pwd: self.ice.local().pwd.clone(),
            fingerprint: identity.fingerprint().to_sdp(),
            setup: match self.role {
                None => Setup::ActPass,
                Some(DtlsRole::Server) => Setup::Passive,
                Some(DtlsRole::Client) => Setup::Active,
            },
        }
    }

    /// Starts the DTLS endpoint when it can: a role and fingerprint known, none running, and
    /// for a client somewhere to send its ClientHello. `Err` with the reason if OpenSSL
    /// refused.
    pub(super) fn start_dtls(
        &mut self,
        identity: &DtlsIdentity,
        initial_timeout: Duration,
        now: Instant,
    ) -> Result<(), String> {
        let (Some(role), Some(fp), None) = (self.role, &self.remote_fp, &self.dtls) else {
            return Ok(());
        };
        if role == DtlsRole::Client && self.ice.nominated().is_none() && self.dtls_peer.is_none() {
            return Ok(());
        }
        let config = DtlsConfig {
            initial_timeout,
            ..DtlsConfig::new(role, fp.clone())
        };
        self.dtls = Some(DtlsEndpoint::new(identity, config, now).map_err(|e| e.to_string())?);
        Ok(())
    }

    /// ICE's events as session events (leg `leg` of session `id`).
    pub(super) fn after_ice(
        &mut self,
        id: SessionId,
        leg: LegIndex,
        events: &mut VecDeque<Event>,
    ) -> IceOutcome {
        let mut out = IceOutcome::default();
        while let Some(e) = self.ice.poll_event() {
            match e {
                IceEvent::Nominated(remote) => {
                    // The previous nominated source may have left the validated set already.
                    out.routes_changed = true;
                    events.push_back(Event::IceConnected { id, leg, remote });
                    out.nominated = true;
                }
                IceEvent::ConsentLost => {
                    // ICE forgot every source.
                    out.routes_changed = true;
                    events.push_back(Event::ConsentLost { id, leg });
                }
            }
        }
        out
    }

    /// DTLS's events: SRTP once connected, session events for signaling.
    pub(super) fn after_dtls(
        &mut self,
        id: SessionId,
        leg: LegIndex,
        events: &mut VecDeque<Event>,
    ) {
        let Some(dtls) = self.dtls.as_mut() else {
            return;
        };
        while let Some(e) = dtls.poll_event() {
            let failure = match e {
                DtlsEvent::Connected { profile, keys } => {
                    let sessions = SrtpSession::new(profile, &keys.remote, SrtpDirection::Inbound)
                        .and_then(|i| {
                            SrtpSession::new(profile, &keys.local, SrtpDirection::Outbound)
                                .map(|o| (i, o))
                        });
                    match sessions {
                        Ok((i, o)) => {
                            self.srtp_in = Some(i);
                            self.srtp_out = Some(o);
                            events.push_back(Event::DtlsConnected {
                                id,
                                leg,
                                profile: profile.openssl_name().to_owned(),
                            });
                            continue;
                        }
                        Err(e) => e.to_string(),
                    }
                }
                DtlsEvent::Failed(e) => e.to_string(),
                DtlsEvent::Closed => {
                    // close_notify (RFC 5246 §7.2.1): the browser is hanging up. Not a failure:
                    // stop sending to it and let signaling end the call on the BYE (the media
                    // timeout is the backstop). What is still in flight from it is accepted.
                    self.srtp_out = None;
                    continue;
                }
            };
            let reason = format!(
                "{failure} (after {} DTLS datagrams in, {} source changes, ICE {})",
                self.dtls_in,
                self.dtls_moves,
                if self.ice.nominated().is_some() {
                    "nominated"
                } else {
                    "not nominated"
                }
            );
            events.push_back(Event::DtlsFailed { id, leg, reason });
        }
    }
}

/// Our DTLS role from the browser's `a=setup` (RFC 5763 §5).
fn role_for(remote: Setup) -> DtlsRole {
    match remote {
        Setup::Active | Setup::ActPass => DtlsRole::Server,
        Setup::Passive => DtlsRole::Client,
    }
}

fn creds_of(r: &WebRtcRemote) -> IceCredentials {
    IceCredentials {
        ufrag: r.ice_ufrag.clone(),
        pwd: r.ice_pwd.clone(),
    }
}

/// Which stream of a plain leg the MID header extension of bundle RTP `h` names: video for
/// the video section's MID, audio for any other; `None` without the negotiated extension.
pub(super) fn mid_stream(r: &WebRtcRemote, h: &RtpHeader<'_>) -> Option<Stream> {
    let id = r.mid_ext?;
    if !h.has_extension() {
        return None;
    }
    let mid = h.extension_element(id)?;
    Some(match &r.video_mid {
        Some(v) if v.as_bytes() == mid => Stream::Video,
        _ => Stream::Audio,
    })
}

pub(super) fn srtp_drop(e: SrtpError) -> DropReason {
    match e {
        SrtpError::AuthFail => DropReason::SrtpAuth,
        SrtpError::Replay | SrtpError::ReplayOld => DropReason::SrtpReplay,
        SrtpError::NoTailRoom { .. } => DropReason::TooLarge,
        _ => DropReason::SrtpOther,
    }
}
