//! The datagram and bencode/JSON decoders never panic on any input, and what they accept
//! encodes and decodes back to the same value. Seeded pseudo-random inputs and mutations of
//! real requests; the fuzz target `fuzz/fuzz_targets/ng.rs` does the same without bounds.

use ng::bencode::{self, Limits, Value};
use ng::datagram::{self, Incoming};
use ng::{json, Request};
use testkit::SeededRng;

const SEEDS: &[&[u8]] = &[
    b"5323_1 d7:command4:pinge",
    b"0_4711_12 d7:command5:offer3:sdp3:v=07:call-id12:c1@127.0.0.18:from-tag3:ft1\
      13:received-froml3:IP49:127.0.0.1e8:supportsl10:load limite7:replacel6:origin\
      18:session-connectione3:ICE5:force18:transport-protocol17:UDP/TLS/RTP/SAVPF\
      8:rtcp-muxl5:offer7:requiree4:SDESl3:offe5:flagsl13:trust-address16:codec-strip-G722e\
      5:codecd5:stripl4:PCMAeee",
    b"0_4711_13 d7:command6:delete7:call-id2:c112:delete delayi0e5:flagsl5:fatalee",
    br#"c9 {"command":"query","call-id":"c1","flags":["fast"],"n":-5,"d":{"a":[1,"x"]}}"#,
];

/// Alphabet that keeps mutated bencode close to valid.
const BYTES: &[u8] = b"dlie0123456789:-{}[]\",a ";

fn mutate(rng: &mut SeededRng, input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = input.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 => {
                let b = BYTES[rng.below(BYTES.len())];
                input.insert(rng.below(len + 1), b);
            }
            2 if len > 0 => {
                input.remove(rng.below(len));
            }
            3 => input.truncate(rng.below(len + 1)),
            4 if len > 0 => {
                let i = rng.below(len);
                input[i] = BYTES[rng.below(BYTES.len())];
            }
            _ => {
                // Duplicate a slice in place (nesting, repeated keys).
                if len > 1 {
                    let a = rng.below(len);
                    let b = a + rng.below(len - a);
                    let slice = input[a..b].to_vec();
                    let at = rng.below(len + 1);
                    input.splice(at..at, slice);
                }
            }
        }
    }
}

fn check(input: &[u8], accepted: &mut usize, refused: &mut usize) {
    let limits = Limits::default();
    let _ = datagram::parse(input, &limits);
    let body = datagram::split(input).map_or(input, |d| d.body);
    match bencode::decode(body) {
        Ok(v) => {
            *accepted += 1;
            let again = bencode::encode(&v);
            assert_eq!(bencode::decode(&again).as_ref(), Ok(&v), "{input:?}");
            // Sorted output is canonical: encoding again changes nothing.
            assert_eq!(bencode::encode(&bencode::decode(&again).unwrap()), again);
            if let Value::Dict(d) = &v {
                let _ = Request::from_dict(d);
            }
        }
        Err(_) => *refused += 1,
    }
    if let Ok(v) = json::decode(body, &limits) {
        let again = json::encode(&v);
        assert_eq!(json::decode(&again, &limits).ok(), Some(v), "{input:?}");
    }
}

#[test]
fn decoders_never_panic_and_round_trip() {
    let mut rng = SeededRng::new(0x9e37_79b9_7f4a_7c15);
    let (mut accepted, mut refused) = (0, 0);
    // Mutated real requests.
    for i in 0..4_000 {
        let mut input = SEEDS[i % SEEDS.len()].to_vec();
        mutate(&mut rng, &mut input);
        check(&input, &mut accepted, &mut refused);
    }
    // Random bytes from the bencode alphabet, and any bytes.
    for i in 0..3_000 {
        let len = rng.below(64);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if i % 2 == 0 {
                    BYTES[rng.below(BYTES.len())]
                } else {
                    rng.next_u64() as u8
                }
            })
            .collect();
        check(&input, &mut accepted, &mut refused);
    }
    // Both outcomes occurred, so neither branch went untested.
    assert!(
        accepted > 0 && refused > 0,
        "{accepted} accepted, {refused} refused"
    );
    // Every seed itself is accepted and typed.
    for seed in SEEDS {
        match datagram::parse(seed, &Limits::default()) {
            Incoming::Request { request, .. } => assert!(request.command.is_some()),
            other => panic!("seed refused: {other:?}"),
        }
    }
}
