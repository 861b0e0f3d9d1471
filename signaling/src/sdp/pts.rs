//! `ALLOWED_PTS`: the codec allow-list (Sippy `--allowed_pts`).
//!
//! A comma-separated list of payload type numbers and `[name/rate]` or `[name/rate/channels]`
//! entries. A named entry matches a format through its `a=rtpmap` (case-sensitive, as the
//! replaced system does; a channel count of 1 is the same as none), or through the RFC 3551
//! static table when a static payload type comes without `a=rtpmap`.

/// One allowed format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtEntry {
    /// A payload type number.
    Number(u8),
    /// `encoding/clock[/channels]`, compared with the rtpmap value (`/1` is the same as none).
    Encoding(String),
}

/// The parsed allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtFilter(Vec<PtEntry>);

/// Why an `ALLOWED_PTS` entry is bad.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PtError {
    #[error("'{0}' is neither a payload type (0-127) nor [name/rate] or [name/rate/channels]")]
    BadEntry(String),
    #[error("the list is empty")]
    Empty,
}

/// RFC 3551 §6 static audio/video payload types, as `encoding/clock[/channels]`.
pub fn static_encoding(pt: u8) -> Option<&'static str> {
    Some(match pt {
        0 => "PCMU/8000",
        3 => "GSM/8000",
        4 => "G723/8000",
        5 => "DVI4/8000",
        6 => "DVI4/16000",
        7 => "LPC/8000",
        8 => "PCMA/8000",
        9 => "G722/8000",
        10 => "L16/44100/2",
        11 => "L16/44100",
        12 => "QCELP/8000",
        13 => "CN/8000",
        14 => "MPA/90000",
        15 => "G728/8000",
        16 => "DVI4/11025",
        17 => "DVI4/22050",
        18 => "G729/8000",
        25 => "CelB/90000",
        26 => "JPEG/90000",
        28 => "nv/90000",
        31 => "H261/90000",
        32 => "MPV/90000",
        33 => "MP2T/90000",
        34 => "H263/90000",
        _ => return None,
    })
}

impl PtFilter {
    pub fn parse(s: &str) -> Result<Self, PtError> {
        let mut entries = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let bad = || PtError::BadEntry(item.to_string());
            let entry = if let Some(inner) = item.strip_prefix('[') {
                let inner = inner.strip_suffix(']').ok_or_else(bad)?;
                let parts: Vec<&str> = inner.split('/').collect();
                let ok = matches!(parts.len(), 2 | 3)
                    && !parts[0].is_empty()
                    && parts[0]
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'[' && b != b']')
                    && parts[1..]
                        .iter()
                        .all(|n| n.parse::<u32>().is_ok_and(|n| n > 0));
                if !ok {
                    return Err(bad());
                }
                PtEntry::Encoding(inner.to_string())
            } else {
                PtEntry::Number(
                    item.parse::<u8>()
                        .ok()
                        .filter(|n| *n < 128)
                        .ok_or_else(bad)?,
                )
            };
            entries.push(entry);
        }
        if entries.is_empty() {
            return Err(PtError::Empty);
        }
        Ok(PtFilter(entries))
    }

    /// Whether payload type `pt`, described by `rtpmap` (`encoding/clock[/channels]`, if the SDP
    /// has one), is allowed.
    pub fn is_allowed(&self, pt: u8, rtpmap: Option<&str>) -> bool {
        let enc = rtpmap.or_else(|| static_encoding(pt));
        self.0.iter().any(|e| match e {
            PtEntry::Number(n) => *n == pt,
            PtEntry::Encoding(want) => enc.is_some_and(|e| same_encoding(e, want)),
        })
    }

    pub fn entries(&self) -> &[PtEntry] {
        &self.0
    }
}

/// `encoding/clock[/channels]` without a channel count of 1, which is the same as none
/// (RFC 4566 §6: "if omitted, the number of channels is one").
fn without_mono(e: &str) -> &str {
    e.strip_suffix("/1")
        .filter(|r| r.contains('/'))
        .unwrap_or(e)
}

/// Whether two `encoding/clock[/channels]` values name the same format: Firefox writes
/// `G722/8000/1` where Chromium and `ALLOWED_PTS` write `G722/8000`.
fn same_encoding(a: &str, b: &str) -> bool {
    without_mono(a) == without_mono(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "[G722/8000],[PCMU/8000],[PCMA/8000],[telephone-event/8000],[VP8/90000]";

    #[test]
    fn container_default_on_a_chromium_offer() {
        let f = PtFilter::parse(DEFAULT).unwrap();
        assert_eq!(f.entries().len(), 5);
        // 111 63 9 0 8 13 110 126 as Chromium offers them
        assert!(!f.is_allowed(111, Some("opus/48000/2")));
        assert!(!f.is_allowed(63, Some("red/48000/2")));
        assert!(f.is_allowed(9, Some("G722/8000")));
        assert!(f.is_allowed(0, Some("PCMU/8000")));
        assert!(f.is_allowed(8, Some("PCMA/8000")));
        assert!(!f.is_allowed(13, Some("CN/8000")));
        assert!(!f.is_allowed(110, Some("telephone-event/48000")));
        assert!(f.is_allowed(126, Some("telephone-event/8000")));
    }

    #[test]
    fn static_pt_without_rtpmap_uses_rfc3551() {
        let f = PtFilter::parse(DEFAULT).unwrap();
        assert!(f.is_allowed(0, None));
        assert!(f.is_allowed(8, None));
        assert!(!f.is_allowed(18, None));
        assert!(!f.is_allowed(96, None));
    }

    #[test]
    fn numbers_and_case() {
        let f = PtFilter::parse("0, 8,[pcmu/8000],[opus/48000/2]").unwrap();
        assert!(f.is_allowed(8, Some("whatever/1")));
        assert!(f.is_allowed(111, Some("opus/48000/2")));
        assert!(
            !f.is_allowed(100, Some("PCMU/8000")),
            "match is case-sensitive"
        );
    }

    #[test]
    fn a_channel_count_of_one_is_the_same_as_none_both_ways() {
        // Firefox writes `a=rtpmap:9 G722/8000/1`; the default list says `[G722/8000]`.
        let f = PtFilter::parse(DEFAULT).unwrap();
        assert!(f.is_allowed(9, Some("G722/8000/1")));
        assert!(f.is_allowed(0, Some("PCMU/8000/1")));
        assert!(f.is_allowed(101, Some("telephone-event/8000/1")));
        // And a list that writes the 1 matches an rtpmap (or a static type) without it.
        let f = PtFilter::parse("[G722/8000/1],[PCMA/8000/1]").unwrap();
        assert!(f.is_allowed(9, Some("G722/8000")));
        assert!(f.is_allowed(9, Some("G722/8000/1")));
        assert!(f.is_allowed(8, None));
        // Other channel counts and rates stay distinct.
        let f = PtFilter::parse("[opus/48000/2],[L16/44100]").unwrap();
        assert!(!f.is_allowed(111, Some("opus/48000")));
        assert!(!f.is_allowed(111, Some("opus/48000/1")));
        assert!(!f.is_allowed(10, None), "L16/44100/2 is not L16/44100");
        assert!(f.is_allowed(11, None));
        assert!(!PtFilter::parse(DEFAULT)
            .unwrap()
            .is_allowed(9, Some("G722/16000/1")));
    }

    #[test]
    fn bad_lists() {
        for bad in [
            "[PCMU]",
            "[PCMU/8000",
            "128",
            "-1",
            "PCMU/8000",
            "[/8000]",
            "[a/b]",
            "[a/8000/2/1]",
        ] {
            assert!(PtFilter::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PtFilter::parse(""), Err(PtError::Empty));
    }
}
