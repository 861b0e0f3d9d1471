//! The names SIP gives to transactions and dialogs, as types rather than strings: a Via
//! `branch` (RFC 3261 §8.1.1.7), a `Call-ID` (§8.1.1.4) and a From/To `tag` (§19.3). A branch
//! cannot be passed where a tag is expected.

use std::fmt;

macro_rules! name {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $t(String);

        impl $t {
            pub fn new(s: impl Into<String>) -> $t {
                $t(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> $t {
                $t(s.to_string())
            }
        }

        impl From<String> for $t {
            fn from(s: String) -> $t {
                $t(s)
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
    };
}

name!(
    /// A Via branch: names a transaction (with `z9hG4bK` in front, RFC 3261 §8.1.1.7).
    Branch
);
name!(
    /// A Call-ID: names a dialog with the two tags.
    CallId
);
name!(
    /// A From or To tag: one side's half of a dialog's name.
    Tag
);

impl Branch {
    /// The branch of the CANCEL for this INVITE's client transaction, kept apart from it in
    /// the table (a CANCEL shares its INVITE's branch, RFC 3261 §9.1).
    pub fn cancel(&self) -> Branch {
        Branch(format!("{}-cancel", self.0))
    }
}

/// A server transaction's key (RFC 3261 §17.2.3): the top Via's branch and sent-by, and the
/// method, with ACK matching INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    pub branch: Branch,
    /// `host[:port]` of the top Via, lower case.
    pub sent_by: String,
    /// The method, INVITE for an ACK.
    pub method: String,
}

impl ServerKey {
    /// The key of the INVITE a CANCEL with this key cancels.
    pub fn invite(&self) -> ServerKey {
        ServerKey {
            method: "INVITE".into(),
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_as_their_text_and_compare_with_it() {
        let b = Branch::from("z9hG4bK1");
        assert_eq!(b.to_string(), "z9hG4bK1");
        assert_eq!(b.cancel().as_str(), "z9hG4bK1-cancel");
        let t = Tag::from("t");
        assert!(t == *"t");
        let k = ServerKey {
            branch: b,
            sent_by: "a:5060".into(),
            method: "CANCEL".into(),
        };
        assert_eq!(k.invite().method, "INVITE");
        assert_eq!(k.invite().branch, k.branch);
    }
}
