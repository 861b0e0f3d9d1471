//! HTTP Digest for SIP (RFC 2617 / RFC 3261 §22, MD5 and `qop=auth`): the answer the gateway
//! gives a challenge itself when the static route carries `auth=user:pass`.

/// The value of a challenge parameter (`realm`, `nonce`, `qop`, `opaque`, `algorithm`).
pub fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let body = challenge.trim();
    let body = body
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("digest "))
        .map_or(body, |_| &body[7..]);
    crate::sip::hdr::split_list(body).into_iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

fn md5_hex(s: &str) -> String {
    openssl::hash::hash(openssl::hash::MessageDigest::md5(), s.as_bytes())
        .map(|d| d.iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// The Authorization / Proxy-Authorization value answering `challenge` for `method` on `uri`.
/// `None` when the challenge is not MD5 digest.
pub fn answer(
    challenge: &str,
    method: &str,
    uri: &str,
    user: &str,
    pass: &str,
    cnonce: &str,
) -> Option<String> {
    if !challenge
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("digest")
    {
        return None;
    }
    let alg = param(challenge, "algorithm").unwrap_or("MD5");
    if !alg.eq_ignore_ascii_case("MD5") {
        return None;
    }
    let realm = param(challenge, "realm")?;
    let nonce = param(challenge, "nonce")?;
    let ha1 = md5_hex(&format!("{user}:{realm}:{pass}"));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    let qop_auth = param(challenge, "qop")
        .is_some_and(|q| q.split(',').any(|x| x.trim().eq_ignore_ascii_case("auth")));
    let nc = "00000001";
    let mut out = format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", algorithm=MD5");
    let response = if qop_auth {
        out.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    } else {
        md5_hex(&format!("{ha1}:{nonce}:{ha2}"))
    };
    out.push_str(&format!(", response=\"{response}\""));
    if let Some(o) = param(challenge, "opaque") {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (HTTP, but the computation is the same).
        let ch = "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
                  nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let a = answer(
            ch,
            "GET",
            "/dir/index.html",
            "Mufasa",
            "Circle Of Life",
            "0a4f113b",
        )
        .unwrap();
        assert!(
            a.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{a}"
        );
        assert!(a.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    #[test]
    fn sipjs_captured_digest_verifies() {
        // fixtures/sipjs/register-with-authorization.txt was computed by SIP.js with password
        // "secret"; the same inputs must give the same response.
        let raw = include_bytes!("../../tests/fixtures/sipjs/register-with-authorization.txt");
        let m = crate::sip::msg::SipMsg::parse(raw).unwrap();
        let auth = m.header("Authorization").unwrap();
        let get = |k| param(auth, k).unwrap().to_string();
        let ch = format!(
            "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            get("realm"),
            get("nonce")
        );
        let mine = answer(
            &ch,
            "REGISTER",
            &get("uri"),
            &get("username"),
            "secret",
            &get("cnonce"),
        )
        .unwrap();
        assert_eq!(
            param(&mine, "response"),
            Some(get("response").as_str()),
            "{mine}\n{auth}"
        );
    }

    #[test]
    fn non_digest_or_other_algorithms_are_refused() {
        assert!(answer("Basic realm=\"x\"", "INVITE", "sip:x", "u", "p", "c").is_none());
        assert!(answer(
            "Digest realm=\"x\", nonce=\"n\", algorithm=SHA-512-256",
            "INVITE",
            "sip:x",
            "u",
            "p",
            "c"
        )
        .is_none());
    }
}
