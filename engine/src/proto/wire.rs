//! First-byte demultiplexing and zero-copy RTP/RTCP header views.
//!
//! One UDP port carries STUN, DTLS, SRTP and SRTCP (RFC 7983 §7, RFC 5761 §4); the first byte
//! says which. The views borrow the datagram and never copy or allocate; every accessor of a
//! successfully parsed view is infallible, so the hot path checks lengths once.

#![forbid(unsafe_code)]

use std::fmt;

/// An RTP synchronisation source (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// An RTP payload type, 0..=127 (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pt(pub u8);

impl fmt::Display for Ssrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#010x}", self.0)
    }
}

impl fmt::Display for Pt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a datagram on a multiplexed port is, by its first byte (RFC 7983 §7) and, for RTP/RTCP,
/// its second (RFC 5761 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// First byte 0..=3.
    Stun,
    /// First byte 20..=63.
    Dtls,
    /// First byte 128..=191 and second byte outside 192..=223.
    Rtp,
    /// First byte 128..=191 and second byte 192..=223 (RTCP PT 192..=223).
    Rtcp,
    /// Empty, ZRTP, TURN channel data, or anything else: dropped.
    Unknown,
}

/// Classifies a datagram by its first bytes; never fails, never panics.
pub fn demux(buf: &[u8]) -> PacketKind {
    match buf.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(20..=63) => PacketKind::Dtls,
        Some(128..=191) => match buf.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

/// True if the RTP/RTCP second byte marks RTCP (RFC 5761 §4: packet types 192..=223).
pub fn is_rtcp(buf: &[u8]) -> bool {
    demux(buf) == PacketKind::Rtcp
}

/// Why a buffer is not a well-formed RTP or RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than the fixed header, the CSRC list or the extension need.
    #[error("packet too short: need {need} bytes, have {have}")]
    TooShort { need: usize, have: usize },
    /// The version field is not 2.
    #[error("RTP/RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// The padding count is zero or runs into the header.
    #[error("bad RTP padding count {0}")]
    BadPadding(u8),
    /// The RTCP length field runs past the datagram.
    #[error("RTCP length {words} words runs past the datagram of {have} bytes")]
    BadRtcpLength { words: u16, have: usize },
}

/// Fixed RTP header length (RFC 3550 §5.1).
pub const RTP_FIXED_HEADER_LEN: usize = 12;
/// Fixed RTCP header length including the sender SSRC (RFC 3550 §6.4).
pub const RTCP_HEADER_LEN: usize = 8;

/// Checks the RTP header and returns its full length (fixed part, CSRCs, extension).
fn rtp_header_len(buf: &[u8]) -> Result<usize, WireError> {
    if buf.len() < RTP_FIXED_HEADER_LEN {
        return Err(WireError::TooShort {
            need: RTP_FIXED_HEADER_LEN,
            have: buf.len(),
        });
    }
    let version = buf[0] >> 6;
    if version != 2 {
        return Err(WireError::BadVersion(version));
    }
    let mut len = RTP_FIXED_HEADER_LEN + 4 * usize::from(buf[0] & 0x0f);
    if buf[0] & 0x10 != 0 {
        // RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words, then the words.
        if buf.len() < len + 4 {
            return Err(WireError::TooShort {
                need: len + 4,
                have: buf.len(),
            });
        }
        let words = u16::from_be_bytes([buf[len + 2], buf[len + 3]]);
        len += 4 + 4 * usize::from(words);
    }
    if buf.len() < len {
        return Err(WireError::TooShort {
            need: len,
            have: buf.len(),
        });
    }
    Ok(len)
}

/// Removes the header extension (RFC 3550 §5.3.1) of the RTP packet in `buf[..len]` in place:
/// the payload moves up over it and the X bit is cleared. Returns the new length (`len` when
/// the packet has none).
///
/// The relay strips extensions where a packet crosses between a WebRTC leg and a plain one:
/// their ids were negotiated with one browser only, and the plain side never negotiated any
/// (RFC 8285 §5), so passed on they would mean something else to the next browser (Firefox's
/// video abs-send-time id is the id Chromium takes for the MID, and Chromium then drops every
/// packet as belonging to no section).
pub fn strip_rtp_extension(buf: &mut [u8], len: usize) -> Result<usize, WireError> {
    let pkt = buf.get(..len).ok_or(WireError::TooShort {
        need: len,
        have: buf.len(),
    })?;
    if pkt.first().is_some_and(|b| b & 0x10 == 0) {
        return Ok(len); // the usual case: nothing to parse, nothing to move
    }
    let header_len = rtp_header_len(pkt)?;
    let start = RTP_FIXED_HEADER_LEN + 4 * usize::from(pkt[0] & 0x0f);
    buf.copy_within(header_len..len, start);
    buf[0] &= !0x10;
    Ok(len - (header_len - start))
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Read accessors shared by the shared and the mutable RTP view.
macro_rules! rtp_getters {
    () => {
        /// Always 2 for a parsed header.
        pub fn version(&self) -> u8 {
            self.buf[0] >> 6
        }
        /// The P bit: the payload ends in padding (RFC 3550 §5.1).
        pub fn has_padding(&self) -> bool {
            self.buf[0] & 0x20 != 0
        }
        /// The X bit: a header extension follows the CSRCs.
        pub fn has_extension(&self) -> bool {
            self.buf[0] & 0x10 != 0
        }
        /// Number of CSRC identifiers, 0..=15.
        pub fn csrc_count(&self) -> u8 {
            self.buf[0] & 0x0f
        }
        /// The M bit.
        pub fn marker(&self) -> bool {
            self.buf[1] & 0x80 != 0
        }
        /// The payload type.
        pub fn pt(&self) -> Pt {
            Pt(self.buf[1] & 0x7f)
        }
        /// The sequence number.
        pub fn seq(&self) -> u16 {
            be_u16(self.buf, 2)
        }
        /// The RTP timestamp.
        pub fn timestamp(&self) -> u32 {
            be_u32(self.buf, 4)
        }
        /// The synchronisation source.
        pub fn ssrc(&self) -> Ssrc {
            Ssrc(be_u32(self.buf, 8))
        }
        /// The `i`th contributing source, if `i < csrc_count()`.
        pub fn csrc(&self, i: usize) -> Option<Ssrc> {
            (i < usize::from(self.csrc_count())).then(|| Ssrc(be_u32(self.buf, 12 + 4 * i)))
        }
        /// The header extension's 16-bit profile ("defined by profile"), if any.
        pub fn extension_profile(&self) -> Option<u16> {
            self.has_extension().then(|| {
                be_u16(
                    self.buf,
                    RTP_FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count()),
                )
            })
        }
        /// The value of header extension element `id` (RFC 8285: the one-byte form under
        /// profile 0xBEDE, the two-byte form under 0x100X), if the packet carries one.
        /// Malformed element lists end the search (nothing is read past the extension).
        pub fn extension_element(&self, id: u8) -> Option<&[u8]> {
            let profile = self.extension_profile()?;
            let start = RTP_FIXED_HEADER_LEN + 4 * usize::from(self.csrc_count()) + 4;
            let data = self.buf.get(start..self.header_len)?;
            let one_byte = match profile {
                0xBEDE => true,
                p if p & 0xFFF0 == 0x1000 => false,
                _ => return None,
            };
            let mut i = 0;
            while i < data.len() {
                let b = data[i];
                if b == 0 {
                    i += 1; // padding
                    continue;
                }
                let (eid, len, at) = if one_byte {
                    if b >> 4 == 15 {
                        return None; // reserved: stop
                    }
                    (b >> 4, usize::from(b & 0x0f) + 1, i + 1)
                } else {
                    (b, usize::from(*data.get(i + 1)?), i + 2)
                };
                let value = data.get(at..at + len)?;
                if eid == id {
                    return Some(value);
                }
                i = at + len;
            }
            None
        }
        /// Bytes of the fixed header, CSRCs and extension: where the payload starts.
        pub fn header_len(&self) -> usize {
            self.header_len
        }
        /// The whole packet this view covers.
        pub fn len(&self) -> usize {
            self.buf.len()
        }
        /// Never true for a parsed header (it has at least 12 bytes); here for clippy's sake.
        pub fn is_empty(&self) -> bool {
            self.buf.is_empty()
        }
        /// The padding length from the last byte when the P bit is set, checked against the
        /// payload (RFC 3550 §5.1). Only meaningful on plaintext: SRTP encrypts the padding.
        pub fn padding_len(&self) -> Result<usize, WireError> {
            if !self.has_padding() {
                return Ok(0);
            }
            let count = self.buf[self.buf.len() - 1];
            let room = self.buf.len() - self.header_len;
            if count == 0 || usize::from(count) > room {
                return Err(WireError::BadPadding(count));
            }
            Ok(usize::from(count))
        }
        /// The payload without header (padding, if any, included).
        pub fn payload(&self) -> &[u8] {
            &self.buf[self.header_len..]
        }
    };
}

/// A checked, read-only view of an RTP packet (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    buf: &'a [u8],
    header_len: usize,
}

impl<'a> RtpHeader<'a> {
    /// Checks version, CSRC list and extension lengths against the buffer.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let header_len = rtp_header_len(buf)?;
        Ok(Self { buf, header_len })
    }

    rtp_getters!();
}

/// A checked, writable view of an RTP packet, for rewriting SSRC, PT, sequence and timestamp
/// in place on the relay path.
#[derive(Debug)]
pub struct RtpHeaderMut<'a> {
    buf: &'a mut [u8],
    header_len: usize,
}

impl<'a> RtpHeaderMut<'a> {
    /// Same checks as [`RtpHeader::parse`].
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, WireError> {
        let header_len = rtp_header_len(buf)?;
        Ok(Self { buf, header_len })
    }

    rtp_getters!();

    /// Sets the M bit.
    pub fn set_marker(&mut self, marker: bool) {
        self.buf[1] = (self.buf[1] & 0x7f) | if marker { 0x80 } else { 0 };
    }
    /// Sets the payload type; values above 127 are masked to 7 bits.
    pub fn set_pt(&mut self, pt: Pt) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt.0 & 0x7f);
    }
    /// Sets the sequence number.
    pub fn set_seq(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }
    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }
    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.buf[8..12].copy_from_slice(&ssrc.0.to_be_bytes());
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.header_len..]
    }
}

/// A checked view of the first RTCP packet of a (possibly compound) datagram (RFC 3550 §6.4).
#[derive(Debug, Clone, Copy)]
pub struct RtcpHeader<'a> {
    buf: &'a [u8],
}

impl<'a> RtcpHeader<'a> {
    /// Checks version and the fixed 8 bytes. The length field is checked only by
    /// [`RtcpHeader::packet_len`]: on SRTCP the trailer follows the packets.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        if buf.len() < RTCP_HEADER_LEN {
            return Err(WireError::TooShort {
                need: RTCP_HEADER_LEN,
                have: buf.len(),
            });
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(WireError::BadVersion(version));
        }
        Ok(Self { buf })
    }

    /// The P bit.
    pub fn has_padding(&self) -> bool {
        self.buf[0] & 0x20 != 0
    }
    /// Reception report count (or the subtype for APP/feedback packets).
    pub fn count(&self) -> u8 {
        self.buf[0] & 0x1f
    }
    /// Packet type: 200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, 205/206 feedback.
    pub fn packet_type(&self) -> u8 {
        self.buf[1]
    }
    /// The length field: the packet's length in 32-bit words minus one.
    pub fn length_words(&self) -> u16 {
        be_u16(self.buf, 2)
    }
    /// The first packet's length in bytes, checked against the buffer.
    pub fn packet_len(&self) -> Result<usize, WireError> {
        let words = self.length_words();
        let len = 4 * (usize::from(words) + 1);
        if len > self.buf.len() {
            return Err(WireError::BadRtcpLength {
                words,
                have: self.buf.len(),
            });
        }
        Ok(len)
    }
    /// The sender's SSRC (the packet sender for SR/RR/feedback, the first chunk for SDES/BYE).
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.buf, 4))
    }
}

#[cfg(test)]
mod tests {

    /// RTP with a header extension block (profile, words) after 12 fixed bytes.
    fn with_ext(profile: u16, ext: &[u8]) -> Vec<u8> {
        assert_eq!(ext.len() % 4, 0);
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9];
        p.extend_from_slice(&profile.to_be_bytes());
        p.extend_from_slice(&((ext.len() / 4) as u16).to_be_bytes());
        p.extend_from_slice(ext);
        p.extend_from_slice(b"payload");
        p
    }

    #[test]
    fn stripping_the_header_extension_keeps_header_csrcs_and_payload() {
        let p = with_ext(0xBEDE, &[0x12, 0xaa, 0xbb, 0xcc, 0x00, 0x40, b'1', 0x00]);
        let mut buf = p.clone();
        buf.extend_from_slice(&[0xee; 16]); // tail room beyond the packet stays untouched
        let n = strip_rtp_extension(&mut buf, p.len()).unwrap();
        assert_eq!(n, 12 + 7);
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert!(!h.has_extension());
        assert_eq!((h.pt(), h.seq(), h.ssrc()), (Pt(96), 1, Ssrc(9)));
        assert_eq!(h.payload(), b"payload");
        // With two CSRCs: they stay, the extension after them goes.
        let mut p = vec![
            0x92, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 8,
        ];
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x40, b'0', 0, 0]);
        p.extend_from_slice(b"xyz");
        let len = p.len();
        let n = strip_rtp_extension(&mut p, len).unwrap();
        let h = RtpHeader::parse(&p[..n]).unwrap();
        assert_eq!((h.csrc(0), h.csrc(1)), (Some(Ssrc(7)), Some(Ssrc(8))));
        assert_eq!(h.payload(), b"xyz");
        // Without an extension nothing changes; a bad packet is an error, never a panic.
        let mut plain = vec![0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2];
        assert_eq!(strip_rtp_extension(&mut plain, 14), Ok(14));
        assert_eq!(plain, [0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9, 1, 2]);
        let mut short = with_ext(0xBEDE, &[0x40, b'1', 0, 0]);
        short.truncate(17);
        assert!(strip_rtp_extension(&mut short, 17).is_err());
        assert!(strip_rtp_extension(&mut plain, 99).is_err());
    }

    #[test]
    fn header_extension_elements_one_and_two_byte() {
        // RFC 8285 §4.2: id 1 (abs-send-time, 3 bytes), padding, id 4 ("1", the MID).
        let p = with_ext(0xBEDE, &[0x12, 0xaa, 0xbb, 0xcc, 0x00, 0x40, b'1', 0x00]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.extension_element(4), Some(&b"1"[..]));
        assert_eq!(h.extension_element(1), Some(&[0xaa, 0xbb, 0xcc][..]));
        assert_eq!(h.extension_element(2), None);
        assert_eq!(h.payload(), b"payload");
        // §4.3: two-byte form, id 4 with a two-byte value, then id 9 empty.
        let p = with_ext(0x1000, &[0x04, 0x02, b'1', b'0', 0x09, 0x00, 0x00, 0x00]);
        let h = RtpHeader::parse(&p).unwrap();
        assert_eq!(h.extension_element(4), Some(&b"10"[..]));
        assert_eq!(h.extension_element(9), Some(&b""[..]));
        // A length running past the block ends the search; other profiles carry no elements.
        let p = with_ext(0xBEDE, &[0x4f, b'1', 0x00, 0x00]);
        assert_eq!(RtpHeader::parse(&p).unwrap().extension_element(4), None);
        let p = with_ext(0x1234, &[0x40, b'1', 0x00, 0x00]);
        assert_eq!(RtpHeader::parse(&p).unwrap().extension_element(4), None);
        let mut plain = with_ext(0xBEDE, &[0x40, b'1', 0, 0]);
        plain[0] = 0x80; // no X bit: no extension at all
        plain.truncate(12);
        assert_eq!(RtpHeader::parse(&plain).unwrap().extension_element(4), None);
    }

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        d.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    #[test]
    fn demux_follows_rfc7983_ranges() {
        for b in 0..=255u8 {
            let want = match b {
                0..=3 => PacketKind::Stun,
                20..=63 => PacketKind::Dtls,
                128..=191 => PacketKind::Rtp,
                _ => PacketKind::Unknown,
            };
            assert_eq!(demux(&[b, 0]), want, "first byte {b}");
        }
        assert_eq!(demux(&[]), PacketKind::Unknown);
        assert_eq!(
            demux(&[0x80]),
            PacketKind::Unknown,
            "one byte cannot tell RTP from RTCP"
        );
    }

    #[test]
    fn rtcp_is_told_from_rtp_by_the_second_byte() {
        for b in 0..=255u8 {
            let want = if (192..=223).contains(&b) {
                PacketKind::Rtcp
            } else {
                PacketKind::Rtp
            };
            assert_eq!(demux(&[0x80, b]), want, "second byte {b}");
        }
        assert!(is_rtcp(&hex("81c8000b cafebabe")));
        // PT 0 with the marker set is 0x80: still RTP.
        assert!(!is_rtcp(&hex("8080 0001")));
    }

    #[test]
    fn rtp_header_fields_read_back() {
        let pkt = hex("800f1234decafbadcafebabe abababab");
        let h = RtpHeader::parse(&pkt).unwrap();
        assert_eq!(h.version(), 2);
        assert!(!h.marker() && !h.has_padding() && !h.has_extension());
        assert_eq!(h.pt(), Pt(15));
        assert_eq!(h.seq(), 0x1234);
        assert_eq!(h.timestamp(), 0xdecafbad);
        assert_eq!(h.ssrc(), Ssrc(0xcafebabe));
        assert_eq!(h.csrc_count(), 0);
        assert_eq!(h.header_len(), 12);
        assert_eq!(h.payload(), &[0xab; 4]);
        assert_eq!(h.padding_len(), Ok(0));
    }

    #[test]
    fn rtp_csrcs_extension_and_padding() {
        // V=2 P=1 X=1 CC=2, M=1 PT=111; two CSRCs; extension 0xbede with one word; payload 2
        // bytes + 2 bytes of padding.
        let pkt = hex("b2ef 0001 00000010 11223344 aaaaaaaa bbbbbbbb bede0001 10ff0000 c0de 0002");
        let h = RtpHeader::parse(&pkt).unwrap();
        assert!(h.marker() && h.has_padding() && h.has_extension());
        assert_eq!(h.pt(), Pt(111));
        assert_eq!(h.csrc_count(), 2);
        assert_eq!(h.csrc(0), Some(Ssrc(0xaaaaaaaa)));
        assert_eq!(h.csrc(1), Some(Ssrc(0xbbbbbbbb)));
        assert_eq!(h.csrc(2), None);
        assert_eq!(h.extension_profile(), Some(0xbede));
        assert_eq!(h.header_len(), 12 + 8 + 8);
        assert_eq!(h.padding_len(), Ok(2));
        let mut bad = pkt.clone();
        *bad.last_mut().unwrap() = 0;
        assert_eq!(
            RtpHeader::parse(&bad).unwrap().padding_len(),
            Err(WireError::BadPadding(0))
        );
        *bad.last_mut().unwrap() = 5;
        assert_eq!(
            RtpHeader::parse(&bad).unwrap().padding_len(),
            Err(WireError::BadPadding(5))
        );
    }

    #[test]
    fn rtp_malformed_headers_are_errors() {
        assert_eq!(
            RtpHeader::parse(&hex("800f1234 decafbad cafeba")).unwrap_err(),
            WireError::TooShort { need: 12, have: 11 }
        );
        assert_eq!(
            RtpHeader::parse(&hex("400f1234 decafbad cafebabe")).unwrap_err(),
            WireError::BadVersion(1)
        );
        // CC=1 but no CSRC.
        assert_eq!(
            RtpHeader::parse(&hex("810f1234 decafbad cafebabe")).unwrap_err(),
            WireError::TooShort { need: 16, have: 12 }
        );
        // Extension header promising two words, one present.
        assert_eq!(
            RtpHeader::parse(&hex("900f1234 decafbad cafebabe bede0002 00000000")).unwrap_err(),
            WireError::TooShort { need: 24, have: 20 }
        );
    }

    #[test]
    fn rtp_rewrite_in_place() {
        let mut pkt = hex("800f1234decafbadcafebabe abababab");
        let mut h = RtpHeaderMut::parse(&mut pkt).unwrap();
        h.set_marker(true);
        h.set_pt(Pt(0));
        h.set_seq(7);
        h.set_timestamp(8);
        h.set_ssrc(Ssrc(9));
        h.payload_mut()[0] = 0;
        assert_eq!(pkt, hex("80800007 00000008 00000009 00ababab"));
    }

    #[test]
    fn rtcp_header_reads_and_checks_length() {
        let sr = hex("81c80006 cafebabe 00000000 00000000 00000000 00000000 00000000");
        let h = RtcpHeader::parse(&sr).unwrap();
        assert_eq!(h.count(), 1);
        assert_eq!(h.packet_type(), 200);
        assert_eq!(h.ssrc(), Ssrc(0xcafebabe));
        assert_eq!(h.packet_len(), Ok(28));
        let h = RtcpHeader::parse(&sr[..20]).unwrap();
        assert_eq!(
            h.packet_len(),
            Err(WireError::BadRtcpLength { words: 6, have: 20 })
        );
        assert!(RtcpHeader::parse(&sr[..7]).is_err());
        assert_eq!(
            RtcpHeader::parse(&hex("01c80006 cafebabe")).unwrap_err(),
            WireError::BadVersion(0)
        );
    }

    #[test]
    fn never_panics_on_any_input() {
        let mut rng = testkit::SeededRng::new(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 96];
        for _ in 0..200_000 {
            let len = rng.below(97);
            rng.fill(&mut buf[..len]);
            // Bias towards RTP-looking first bytes so the deeper checks run too.
            if len > 0 && rng.next_u64() & 1 == 0 {
                buf[0] = 0x80 | (buf[0] & 0x3f);
            }
            let pkt = &mut buf[..len];
            let _ = demux(pkt);
            if let Ok(h) = RtpHeader::parse(pkt) {
                assert!(h.header_len() <= pkt.len());
                let _ = (
                    h.padding_len(),
                    h.payload(),
                    h.extension_profile(),
                    h.csrc(15),
                );
            }
            if let Ok(h) = RtcpHeader::parse(pkt) {
                let _ = (h.packet_len(), h.ssrc(), h.count());
            }
            if let Ok(mut h) = RtpHeaderMut::parse(pkt) {
                h.set_seq(1);
                let _ = h.payload_mut();
            }
        }
    }
}
