//! JSON dictionaries, which rtpengine accepts in place of bencode since mr10.3 (a body starting
//! with `{`), answering in JSON. Kamailio 5.6 never sends JSON; this is for other clients.
//!
//! JSON maps onto the bencode [`Value`] model: strings become byte strings, integers stay
//! integers, arrays become lists, objects become dictionaries. `true`/`false` become `1`/`0`.
//! Fractions, numbers outside `i64` and `null` have no bencode form and are refused. Output
//! writes byte strings as JSON strings (invalid UTF-8 replaced by U+FFFD, which no reply we
//! build contains).

use crate::bencode::{Dict, Limits, Value};

/// Why a JSON body was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error("not a JSON document: {0}")]
    Syntax(#[from] serde_json::Error),
    #[error("JSON value without a bencode form (null or a fraction)")]
    Unrepresentable,
    #[error("JSON nesting deeper than {max}")]
    TooDeep { max: usize },
    #[error("more than {max} JSON values")]
    TooManyItems { max: usize },
    #[error("JSON input of {len} bytes over the limit of {max}")]
    TooLong { len: usize, max: usize },
}

/// Decodes one JSON document into a [`Value`] within `limits`. serde_json bounds its own
/// recursion (128 levels) while parsing; the conversion applies ours.
pub fn decode(input: &[u8], limits: &Limits) -> Result<Value, JsonError> {
    if input.len() > limits.max_len {
        return Err(JsonError::TooLong {
            len: input.len(),
            max: limits.max_len,
        });
    }
    let doc: serde_json::Value = serde_json::from_slice(input)?;
    let mut items = 0;
    convert(&doc, 1, &mut items, limits)
}

fn convert(
    v: &serde_json::Value,
    depth: usize,
    items: &mut usize,
    limits: &Limits,
) -> Result<Value, JsonError> {
    use serde_json::Value as J;
    *items += 1;
    if *items > limits.max_items {
        return Err(JsonError::TooManyItems {
            max: limits.max_items,
        });
    }
    if matches!(v, J::Array(_) | J::Object(_)) && depth > limits.max_depth {
        return Err(JsonError::TooDeep {
            max: limits.max_depth,
        });
    }
    Ok(match v {
        J::Null => return Err(JsonError::Unrepresentable),
        J::Bool(b) => Value::Int(i64::from(*b)),
        J::Number(n) => Value::Int(n.as_i64().ok_or(JsonError::Unrepresentable)?),
        J::String(s) => Value::Bytes(s.as_bytes().to_vec()),
        J::Array(a) => Value::List(
            a.iter()
                .map(|x| convert(x, depth + 1, items, limits))
                .collect::<Result<_, _>>()?,
        ),
        J::Object(o) => {
            let mut d = Dict::new();
            for (k, x) in o {
                *items += 1;
                d.insert(k.as_bytes().to_vec(), convert(x, depth + 1, items, limits)?);
            }
            Value::Dict(d)
        }
    })
}

/// Encodes `value` as compact JSON, object keys sorted.
pub fn encode(value: &Value) -> Vec<u8> {
    serde_json::to_vec(&to_json(value)).expect("a serde_json::Value always serialises")
}

fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => J::from(*i),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, x)| (String::from_utf8_lossy(k).into_owned(), to_json(x)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_in_json() {
        let v = decode(br#"{"command":"ping"}"#, &Limits::default()).unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d[&b"command"[..]], Value::str("ping"));
        let mut pong = Dict::new();
        pong.insert(b"result".to_vec(), Value::str("pong"));
        assert_eq!(encode(&Value::Dict(pong)), br#"{"result":"pong"}"#);
    }

    #[test]
    fn shapes_map_onto_bencode() {
        let v = decode(
            br#"{"flags":["trust-address"],"delete delay":0,"b":true,"codec":{"strip":["PCMA"]}}"#,
            &Limits::default(),
        )
        .unwrap();
        let d = v.as_dict().unwrap();
        assert_eq!(d[&b"delete delay"[..]], Value::Int(0));
        assert_eq!(d[&b"b"[..]], Value::Int(1));
        assert_eq!(
            d[&b"flags"[..]],
            Value::List(vec![Value::str("trust-address")])
        );
        // Round trip through our encoder.
        assert_eq!(
            decode(&encode(&v), &Limits::default()).unwrap(),
            v,
            "JSON out, JSON in"
        );
    }

    #[test]
    fn refusals() {
        let l = Limits::default();
        assert!(matches!(
            decode(b"{\"a\":null}", &l),
            Err(JsonError::Unrepresentable)
        ));
        assert!(matches!(
            decode(b"{\"a\":1.5}", &l),
            Err(JsonError::Unrepresentable)
        ));
        assert!(matches!(
            decode(b"{\"a\":18446744073709551615}", &l),
            Err(JsonError::Unrepresentable)
        ));
        assert!(matches!(
            decode(b"{\"a\":1} x", &l),
            Err(JsonError::Syntax(_))
        ));
        let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
        assert!(matches!(
            decode(deep.as_bytes(), &l),
            Err(JsonError::TooDeep { .. })
        ));
        // Past serde_json's own recursion limit: an error, not a stack overflow.
        let deeper = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(matches!(
            decode(deeper.as_bytes(), &l),
            Err(JsonError::Syntax(_))
        ));
    }
}
