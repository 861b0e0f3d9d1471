//! Bencode, as rtpengine's ng protocol carries it: byte strings, integers, lists and
//! dictionaries with byte-string keys.
//!
//! Decoding is strict and bounded: a depth limit (recursion is bounded by it), an input length
//! limit, an item-count limit, no leading zeros, no `-0`, integers within `i64`, string lengths
//! within the input, no duplicate dictionary keys and no trailing bytes after the top value.
//! Key order on input is *not* enforced: rtpengine's documentation says lexicographic order "is
//! currently not honored", and Kamailio writes keys in the order its flags produce them.
//! Encoding is deterministic: dictionaries are [`BTreeMap`]s, so keys go out sorted by raw bytes
//! as the bencode definition asks.

use std::collections::BTreeMap;

/// A bencode dictionary: byte-string keys, sorted.
pub type Dict = BTreeMap<Vec<u8>, Value>;

/// One bencode value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `i<digits>e`
    Int(i64),
    /// `<len>:<bytes>`; ng strings are byte strings (an SDP, a Call-ID), not necessarily UTF-8.
    Bytes(Vec<u8>),
    /// `l…e`
    List(Vec<Value>),
    /// `d…e`
    Dict(Dict),
}

impl Value {
    /// A byte-string value from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The bytes of a string value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A string value that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// An integer value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The items of a list value.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// A dictionary value.
    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
}

/// Bounds for [`decode_with`]. Every bound is checked before the memory it guards is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Nesting depth of lists and dictionaries; the top value is depth 1.
    pub max_depth: usize,
    /// Input length in bytes.
    pub max_len: usize,
    /// Values in total (each string, integer, list and dictionary counts once).
    pub max_items: usize,
}

impl Default for Limits {
    /// Room for any ng message Kamailio or OpenSIPS send: a UDP datagram is at most 65,507
    /// bytes, and an ng request nests 3 levels (`codec` → `strip` → item).
    fn default() -> Limits {
        Limits {
            max_depth: 16,
            max_len: 256 * 1024,
            max_items: 32 * 1024,
        }
    }
}

/// Why bencode input was refused. `offset` is where in the input the fault was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("input ends inside a value at byte {offset}")]
    UnexpectedEnd { offset: usize },
    #[error("unexpected byte {byte:#04x} at byte {offset}")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("malformed integer at byte {offset}")]
    BadInteger { offset: usize },
    #[error("malformed string length at byte {offset}")]
    BadLength { offset: usize },
    #[error("dictionary key at byte {offset} is not a string")]
    KeyNotString { offset: usize },
    #[error("duplicate dictionary key at byte {offset}")]
    DuplicateKey { offset: usize },
    #[error("nesting deeper than {max} at byte {offset}")]
    TooDeep { offset: usize, max: usize },
    #[error("more than {max} values at byte {offset}")]
    TooManyItems { offset: usize, max: usize },
    #[error("input of {len} bytes over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{count} bytes after the value at byte {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

/// Decodes exactly one value filling all of `input`, with the default [`Limits`].
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    decode_with(input, &Limits::default())
}

/// Decodes exactly one value filling all of `input`.
pub fn decode_with(input: &[u8], limits: &Limits) -> Result<Value, DecodeError> {
    let (value, used) = decode_prefix(input, limits)?;
    if used != input.len() {
        return Err(DecodeError::TrailingBytes {
            offset: used,
            count: input.len() - used,
        });
    }
    Ok(value)
}

/// Decodes the value at the start of `input` and says how many bytes it used: the framing a
/// byte stream (rtpengine's TCP ng) needs. `input` is still bounded by `limits.max_len`.
pub fn decode_prefix(input: &[u8], limits: &Limits) -> Result<(Value, usize), DecodeError> {
    if input.len() > limits.max_len {
        return Err(DecodeError::TooLong {
            len: input.len(),
            max: limits.max_len,
        });
    }
    let mut d = Decoder {
        input,
        pos: 0,
        items: 0,
        limits,
    };
    let v = d.value(1)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: &'a Limits,
}

impl Decoder<'_> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEnd { offset: self.pos })
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(DecodeError::TooManyItems {
                offset: self.pos,
                max: self.limits.max_items,
            });
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let start = self.pos;
                let i = self
                    .integer(b'e')
                    .ok_or(DecodeError::BadInteger { offset: start })?;
                Ok(Value::Int(i))
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' | b'd' => {
                if depth > self.limits.max_depth {
                    return Err(DecodeError::TooDeep {
                        offset: self.pos,
                        max: self.limits.max_depth,
                    });
                }
                if self.peek()? == b'l' {
                    self.list(depth)
                } else {
                    self.dict(depth)
                }
            }
            byte => Err(DecodeError::UnexpectedByte {
                offset: self.pos,
                byte,
            }),
        }
    }

    fn list(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.pos += 1;
        let mut items = Vec::new();
        while self.peek()? != b'e' {
            items.push(self.value(depth + 1)?);
        }
        self.pos += 1;
        Ok(Value::List(items))
    }

    fn dict(&mut self, depth: usize) -> Result<Value, DecodeError> {
        self.pos += 1;
        let mut dict = Dict::new();
        while self.peek()? != b'e' {
            let at = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return Err(DecodeError::KeyNotString { offset: at });
            }
            // A key counts as a value for the item limit, like any string.
            self.items += 1;
            if self.items > self.limits.max_items {
                return Err(DecodeError::TooManyItems {
                    offset: at,
                    max: self.limits.max_items,
                });
            }
            let key = self.bytes()?;
            let value = self.value(depth + 1)?;
            if dict.insert(key, value).is_some() {
                return Err(DecodeError::DuplicateKey { offset: at });
            }
        }
        self.pos += 1;
        Ok(Value::Dict(dict))
    }

    /// `<len>:<bytes>`, the length without leading zeros and within the input.
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        let len = self
            .integer(b':')
            .ok_or(DecodeError::BadLength { offset: start })?;
        let len = usize::try_from(len).map_err(|_| DecodeError::BadLength { offset: start })?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.input.len())
            .ok_or(DecodeError::UnexpectedEnd {
                offset: self.input.len(),
            })?;
        let b = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(b)
    }

    /// A decimal integer up to `term`, consumed with it: an optional `-` (not for lengths),
    /// no leading zeros, no `-0`, no empty digits, within `i64`.
    fn integer(&mut self, term: u8) -> Option<i64> {
        let rest = &self.input[self.pos..];
        let end = rest.iter().position(|&b| b == term)?;
        let text = &rest[..end];
        let (neg, digits) = match text.split_first() {
            Some((b'-', d)) if term == b'e' => (true, d),
            _ => (false, text),
        };
        let canonical = match digits {
            [] => false,
            [b'0'] => !neg,
            [b'0', ..] => false,
            _ => digits.iter().all(u8::is_ascii_digit),
        };
        if !canonical {
            return None;
        }
        let mut v: i64 = 0;
        for &d in digits {
            let d = i64::from(d - b'0');
            v = v.checked_mul(10)?;
            v = if neg {
                v.checked_sub(d)?
            } else {
                v.checked_add(d)?
            };
        }
        self.pos += end + 1;
        Some(v)
    }
}

/// Encodes `value`; dictionaries with keys sorted.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(dict) => {
            out.push(b'd');
            for (k, v) in dict {
                encode_bytes(k, out);
                encode_into(v, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(entries: &[(&str, Value)]) -> Value {
        Value::Dict(
            entries
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn ping_and_pong_from_the_protocol_doc() {
        // `5323_1 d7:command4:pinge` is answered `5323_1 d6:result4:ponge`
        // (rtpengine docs/ng_control_protocol.md; shared/notes/ng-protocol.md §1).
        let ping = decode(b"d7:command4:pinge").unwrap();
        assert_eq!(ping, dict(&[("command", Value::str("ping"))]));
        let pong = dict(&[("result", Value::str("pong"))]);
        assert_eq!(encode(&pong), b"d6:result4:ponge");
    }

    #[test]
    fn kamailio_offer_shape_decodes_with_keys_out_of_order() {
        // What Kamailio 5.6 sends for `rtpengine_offer("replace-origin
        // replace-session-connection ICE=force UDP/TLS/RTP/SAVPF rtcp-mux-offer
        // rtcp-mux-require SDES-off")` (notes §3), in the order its flag parser writes keys:
        // not sorted, which must not matter.
        let wire: &[u8] = b"d8:supportsl10:load limite3:sdp3:v=07:call-id5:abc@h8:from-tag2:t1\
            13:received-froml3:IP49:127.0.0.1e7:replacel6:origin18:session-connectione\
            3:ICE5:force18:transport-protocol17:UDP/TLS/RTP/SAVPF8:rtcp-muxl5:offer7:requiree\
            4:SDESl3:offe7:command5:offere";
        let v = decode(wire).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d[&b"command"[..]], Value::str("offer"));
        assert_eq!(
            d[&b"rtcp-mux"[..]],
            Value::List(vec![Value::str("offer"), Value::str("require")])
        );
        assert_eq!(
            d[&b"received-from"[..]].as_list().unwrap()[1],
            Value::str("127.0.0.1")
        );
        // Re-encoded, the keys come out sorted and the result decodes to the same value.
        let again = encode(&v);
        assert_ne!(again, wire);
        assert_eq!(decode(&again).unwrap(), v);
        assert!(again.starts_with(b"d3:ICE5:force4:SDESl3:offe7:call-id"));
    }

    #[test]
    fn integers() {
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(decode(b"i-42e").unwrap(), Value::Int(-42));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap(),
            Value::Int(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
        for bad in [
            &b"ie"[..],
            b"i-e",
            b"i-0e",
            b"i01e",
            b"i1x2e",
            b"i9223372036854775808e",
            b"i1",
            b"i+1e",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(encode(&Value::Int(i64::MIN)), b"i-9223372036854775808e");
    }

    #[test]
    fn strings_are_bytes_and_bounded_by_the_input() {
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(vec![]));
        assert_eq!(
            decode(b"3:\xff\x00e").unwrap(),
            Value::Bytes(vec![0xff, 0, b'e'])
        );
        for bad in [
            &b"4:abc"[..],
            b"01:a",
            b"-1:a",
            b":a",
            b"1a",
            b"99999999999999999999999:a",
        ] {
            assert!(decode(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(
            decode(b"d1:ai1ee1:x"),
            Err(DecodeError::TrailingBytes {
                offset: 8,
                count: 3
            })
        );
        assert_eq!(
            decode(b"di1e1:ae"),
            Err(DecodeError::KeyNotString { offset: 1 })
        );
        assert_eq!(
            decode(b"d1:ai1e1:ai2ee"),
            Err(DecodeError::DuplicateKey { offset: 7 })
        );
        assert_eq!(decode(b""), Err(DecodeError::UnexpectedEnd { offset: 0 }));
        assert!(matches!(
            decode(b"x"),
            Err(DecodeError::UnexpectedByte { byte: b'x', .. })
        ));
        assert!(decode(b"l").is_err());
        assert!(decode(b"d1:ae").is_err());
    }

    #[test]
    fn limits_hold() {
        let limits = Limits {
            max_depth: 3,
            max_len: 64,
            max_items: 5,
        };
        assert!(decode_with(b"llleee", &limits).is_ok());
        assert!(matches!(
            decode_with(b"lllleeee", &limits),
            Err(DecodeError::TooDeep { max: 3, .. })
        ));
        assert!(decode_with(b"li1ei2ei3ei4ee", &limits).is_ok());
        assert!(matches!(
            decode_with(b"li1ei2ei3ei4ei5ee", &limits),
            Err(DecodeError::TooManyItems { max: 5, .. })
        ));
        // Keys count too: 1 dict + 2 keys + 2 values.
        assert!(decode_with(b"d1:ai1e1:bi2ee", &limits).is_ok());
        assert!(decode_with(b"d1:ai1e1:bi2e1:ci3ee", &limits).is_err());
        let long = vec![b'l'; 65];
        assert_eq!(
            decode_with(&long, &limits),
            Err(DecodeError::TooLong { len: 65, max: 64 })
        );
        // The default depth survives a hostile nesting without recursing past it.
        let deep: Vec<u8> = std::iter::repeat_n(b'l', 100_000)
            .chain(std::iter::repeat_n(b'e', 100_000))
            .collect();
        assert!(matches!(decode(&deep), Err(DecodeError::TooDeep { .. })));
    }

    #[test]
    fn prefix_reports_the_length_used() {
        let (v, used) = decode_prefix(b"d1:ai1ee 5323_2 d", &Limits::default()).unwrap();
        assert_eq!(used, 8);
        assert_eq!(v, dict(&[("a", Value::Int(1))]));
    }

    #[test]
    fn encoding_is_deterministic_and_sorted_by_bytes() {
        let v = dict(&[
            ("b", Value::List(vec![Value::Int(-1), Value::str("x")])),
            ("B", Value::Dict(Dict::new())),
            ("a", Value::str("")),
        ]);
        assert_eq!(encode(&v), b"d1:Bde1:a0:1:bli-1e1:xee");
    }
}
