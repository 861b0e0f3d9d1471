//! The parser on every RFC 4475 torture message (fixtures/rfc4475, MANIFEST.tsv): what RFC
//! 4475 calls valid parses; what it calls invalid is refused with the status a server answers
//! (400, or 505 for the bad version); messages that are syntactically valid but semantically
//! wrong parse, except where the RFC asks for 400 at the parser (missing or repeated
//! single-value headers, two Content-Lengths).

use signaling::sip::msg::{Method, SipMsg, StartLine};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");

fn manifest() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(format!("{DIR}/MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

fn load(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

/// Messages the RFC files as semantic tests that a parser still refuses with 400.
const REFUSED_SEMANTIC: &[&str] = &["insuf.sip", "multi01.sip", "mcl01.sip"];

/// Messages the RFC calls valid that the gateway refuses on purpose: intmeth's To holds a NUL
/// as a quoted-pair, which a peer written in C would read as the end of the header (so a
/// header copied to the other leg could be cut or smuggle what follows). CR, LF and NUL are
/// refused anywhere in a header value.
const REFUSED_BY_POLICY: &[&str] = &["intmeth.sip"];

#[test]
fn every_torture_message_gets_its_verdict() {
    let all = manifest();
    assert_eq!(all.len(), 49, "RFC 4475 has 49 messages");
    let mut failures = Vec::new();
    for (file, section, class) in &all {
        let bytes = load(file);
        let result = SipMsg::parse(&bytes);
        let expect_ok = match class.as_str() {
            "valid" => !REFUSED_BY_POLICY.contains(&file.as_str()),
            "invalid" => false,
            _ => !REFUSED_SEMANTIC.contains(&file.as_str()),
        };
        match (&result, expect_ok) {
            (Ok(_), true) => {}
            (Err(e), false) => {
                let want = if file == "badvers.sip" { 505 } else { 400 };
                if e.status != want {
                    failures.push(format!(
                        "{file} ({section}): status {} not {want}: {e}",
                        e.status
                    ));
                }
            }
            (Ok(_), false) => failures.push(format!(
                "{file} ({section}): parsed but RFC 4475 says {class}"
            )),
            (Err(e), true) => failures.push(format!("{file} ({section}): refused: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn wsinv_reads_as_the_rfc_describes() {
    let m = SipMsg::parse(&load("wsinv.sip")).unwrap();
    assert_eq!(m.method(), Some(&Method::Invite));
    assert_eq!(m.headers_named("Via").count(), 3);
    let vias: Vec<_> = m
        .headers_named("Via")
        .map(|v| signaling::sip::hdr::Via::parse(v).unwrap())
        .collect();
    assert_eq!(vias[0].transport, "UDP");
    assert_eq!(vias[1].host, "spindle.example.com");
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.to_hdr().unwrap().tag(), Some("1918181833n"));
    assert_eq!(m.from_hdr().unwrap().tag(), Some("98asjd8"));
    assert_eq!(m.header("Max-Forwards"), Some("0068"));
    assert_eq!(m.cseq().seq, 9);
    assert_eq!(m.header("Subject"), Some(""));
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(
        m.header("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.body.len(), 150);
    let c = signaling::sip::hdr::NameAddr::parse(m.header("Contact").unwrap(), "Contact").unwrap();
    assert_eq!(c.params.value("newparam"), Some("newvalue"));
    assert!(c.params.has("secondparam"));
}

#[test]
fn dblreq_reads_only_the_first_request_and_longreq_keeps_34_vias() {
    let m = SipMsg::parse(&load("dblreq.sip")).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert!(m.body.is_empty());
    let m = SipMsg::parse(&load("longreq.sip")).unwrap();
    assert_eq!(m.headers_named("Via").count(), 34);
    let m = SipMsg::parse(&load("noreason.sip")).unwrap();
    assert!(matches!(m.start, StartLine::Response { code: 100, ref reason } if reason.is_empty()));
}

#[test]
fn every_valid_message_survives_a_print_and_reparse() {
    for (file, _, class) in manifest() {
        if class != "valid" || REFUSED_BY_POLICY.contains(&file.as_str()) {
            continue;
        }
        let m = SipMsg::parse(&load(&file)).unwrap();
        let again = SipMsg::parse(&m.to_bytes()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(m.headers.len(), again.headers.len(), "{file}");
        assert_eq!(m.body, again.body, "{file}");
    }
}

/// Never panics: every fixture (torture and SIP.js) truncated at every length and mutated at
/// random (a fixed seed, a bounded count), plus random bytes.
#[test]
fn parser_never_panics_on_any_input() {
    let mut rng = testkit::SeededRng::new(0x9e37_79b9_7f4a_7c15);
    let mut rand = move || rng.next_u64();
    let mut inputs: Vec<Vec<u8>> = manifest().iter().map(|(f, _, _)| load(f)).collect();
    let sipjs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sipjs");
    for e in std::fs::read_dir(sipjs).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "txt") {
            inputs.push(std::fs::read(p).unwrap());
        }
    }
    let mut runs = 0;
    for base in &inputs {
        for cut in (0..base.len()).step_by(7) {
            let _ = SipMsg::parse(&base[..cut]);
            runs += 1;
        }
        for _ in 0..300 {
            let mut m = base.clone();
            for _ in 0..(rand() % 8 + 1) {
                let i = (rand() as usize) % m.len().max(1);
                match rand() % 4 {
                    0 if !m.is_empty() => m[i] = rand() as u8,
                    1 if !m.is_empty() => {
                        m.remove(i);
                    }
                    2 => m.insert(
                        i.min(m.len()),
                        b"\r\n:;,<>\"\\ %\x00"[(rand() % 12) as usize],
                    ),
                    _ => m.truncate(i),
                }
            }
            if let Ok(msg) = SipMsg::parse(&m) {
                // Whatever parses also prints and reparses.
                let _ = SipMsg::parse(&msg.to_bytes());
            }
            runs += 1;
        }
    }
    for _ in 0..2000 {
        let len = (rand() % 600) as usize;
        let v: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
        let _ = SipMsg::parse(&v);
        runs += 1;
    }
    assert!(runs > 20_000, "{runs}");
}

/// Crashers the fuzzers found, kept as regression tests: the error response to a malformed
/// request must itself parse, or no response is sent.
#[test]
fn fuzz_regressions() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fuzz");
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(e.unwrap().path()).unwrap();
        n += 1;
        match SipMsg::parse(&data) {
            Ok(m) => {
                SipMsg::parse(&m.to_bytes()).unwrap();
            }
            Err(e) => {
                if let Some(r) = signaling::sip::msg::error_response_for(&data, &e, "t") {
                    SipMsg::parse(&r).expect("an error response that parses");
                }
            }
        }
    }
    assert!(n >= 1);
}
