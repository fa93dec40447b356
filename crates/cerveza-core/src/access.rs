//! Per-host access, as in the paper: a user's LDAP entry lists `host` values, and each
//! host lets in the users whose `host` matches one of nine forms built from its name,
//! host group, zone and region (its pam filter).
//!
//! ```text
//! dev-mysql01.us-east-1b   dev-mysql01.us-east-1   dev-mysql01.*
//! dev-mysql*.us-east-1b    dev-mysql*.us-east-1    dev-mysql*.*
//! *.us-east-1b             *.us-east-1             *
//! ```
//!
//! In an LDAP filter a bare `*` is a wildcard: `(host=*)` is a presence test that would
//! let in every user with any grant. Every literal `*` is therefore written `\2a`
//! (RFC 4515), and every other value is escaped too.

use std::fmt;

use crate::names::{Hostname, NameError, Region, Zone};

/// The nine forms, for error messages.
pub const FORMS: &str = "host.zone (dev-mysql01.us-east-1b), host.region (dev-mysql01.us-east-1), host.* (dev-mysql01.*), group*.zone (dev-mysql*.us-east-1b), group*.region (dev-mysql*.us-east-1), group*.* (dev-mysql*.*), *.zone (*.us-east-1b), *.region (*.us-east-1), or * (everywhere)";

/// A grant or user name that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Not one of the nine forms.
    #[error("invalid grant {input:?}: {reason}; a grant is one of: {FORMS}")]
    Pattern {
        /// As given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Not a POSIX user name.
    #[error("invalid user name {input:?}: use a-z, 0-9, '_', '.', '-', starting with a letter or '_', at most 32 characters")]
    User {
        /// As given.
        input: String,
    },
}

/// Which hosts a grant names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HostPart {
    /// One host.
    Host(Hostname),
    /// A host group, kept with its trailing `*` (`dev-mysql*`).
    Group(String),
    /// Every host.
    Any,
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PlacePart {
    /// One zone.
    Zone(Zone),
    /// One region.
    Region(Region),
    /// Everywhere.
    Any,
}

/// A grant: one `host` value of a user's entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// Which hosts.
    pub host: HostPart,
    /// Where.
    pub place: PlacePart,
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host == HostPart::Any && self.place == PlacePart::Any {
            return f.write_str("*");
        }
        match &self.host {
            HostPart::Host(h) => write!(f, "{h}")?,
            HostPart::Group(g) => f.write_str(g)?,
            HostPart::Any => f.write_str("*")?,
        }
        f.write_str(".")?;
        match &self.place {
            PlacePart::Zone(z) => write!(f, "{z}"),
            PlacePart::Region(r) => write!(f, "{r}"),
            PlacePart::Any => f.write_str("*"),
        }
    }
}

impl Grant {
    /// Parses one of the nine forms.
    pub fn parse(input: &str) -> Result<Self, AccessError> {
        let err = |reason: &str| AccessError::Pattern {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input == "*" {
            return Ok(Grant {
                host: HostPart::Any,
                place: PlacePart::Any,
            });
        }
        let Some((left, right)) = input.split_once('.') else {
            return Err(err("no '.' between host and place"));
        };
        let host = if left == "*" {
            HostPart::Any
        } else if let Some(stem) = left.strip_suffix('*') {
            let h = Hostname::parse(stem)
                .map_err(|e: NameError| err(&format!("group: {}", e.reason)))?;
            if stem.ends_with(|c: char| c.is_ascii_digit()) {
                return Err(err(
                    "a host group is a hostname without its trailing digits (dev-mysql*)",
                ));
            }
            HostPart::Group(format!("{h}*"))
        } else {
            HostPart::Host(Hostname::parse(left).map_err(|e| err(&format!("host: {}", e.reason)))?)
        };
        let place = if right == "*" {
            PlacePart::Any
        } else if let Ok(z) = Zone::parse(right) {
            PlacePart::Zone(z)
        } else if let Ok(r) = Region::parse(right) {
            PlacePart::Region(r)
        } else {
            return Err(err(&format!("{right:?} is not a zone, a region or *")));
        };
        if host == HostPart::Any && place == PlacePart::Any {
            return Err(err("write * alone for everywhere"));
        }
        Ok(Grant { host, place })
    }

    /// Whether this grant lets its user into `host` in `zone` (what the pam filter decides).
    pub fn allows(&self, host: &Hostname, zone: &Zone) -> bool {
        host_values(host, zone).contains(&self.to_string())
    }
}

/// The `host` values that open `host` in `zone`, in the paper's order, without repeats
/// (a host without trailing digits is its own group).
pub fn host_values(host: &Hostname, zone: &Zone) -> Vec<String> {
    let group = host.group();
    let (z, r) = (zone.as_str(), zone.region());
    let mut out: Vec<String> = Vec::with_capacity(9);
    for who in [host.as_str(), group.as_str(), "*"] {
        for place in [z, r.as_str(), "*"] {
            let v = if who == "*" && place == "*" {
                "*".to_owned()
            } else {
                format!("{who}.{place}")
            };
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// Escapes a value for an LDAP filter (RFC 4515): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`.
pub fn escape_filter_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '*' => out.push_str("\\2a"),
            '(' => out.push_str("\\28"),
            ')' => out.push_str("\\29"),
            '\\' => out.push_str("\\5c"),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a value for a DN attribute value (RFC 4514).
pub fn escape_dn_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            c => out.push(c),
        }
    }
    out
}

/// The pam filter of `host` in `zone`: an OR of `(host=…)` over [`host_values`], every
/// literal `*` written `\2a`.
pub fn pam_filter(host: &Hostname, zone: &Zone) -> String {
    let terms: String = host_values(host, zone)
        .iter()
        .map(|v| format!("(host={})", escape_filter_value(v)))
        .collect();
    format!("(|{terms})")
}

/// Checks a POSIX user name (what `uid` may hold): `[a-z_][a-z0-9_.-]*`, at most 32.
pub fn check_user(s: &str) -> Result<(), AccessError> {
    let mut chars = s.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        && s.len() <= 32;
    if ok {
        Ok(())
    } else {
        Err(AccessError::User {
            input: s.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Hostname {
        Hostname::parse(s).unwrap()
    }

    fn z(s: &str) -> Zone {
        Zone::parse(s).unwrap()
    }

    #[test]
    fn the_paper_filter() {
        insta::assert_snapshot!(pam_filter(&h("dev-mysql01"), &z("us-east-1b")), @r"(|(host=dev-mysql01.us-east-1b)(host=dev-mysql01.us-east-1)(host=dev-mysql01.\2a)(host=dev-mysql\2a.us-east-1b)(host=dev-mysql\2a.us-east-1)(host=dev-mysql\2a.\2a)(host=\2a.us-east-1b)(host=\2a.us-east-1)(host=\2a))");
    }

    #[test]
    fn a_host_without_digits_is_its_own_group() {
        assert_eq!(host_values(&h("bastion"), &z("eu-west-1a")).len(), 6);
    }

    #[test]
    fn the_nine_forms_parse_and_round_trip() {
        for g in [
            "dev-mysql01.us-east-1b",
            "dev-mysql01.us-east-1",
            "dev-mysql01.*",
            "dev-mysql*.us-east-1b",
            "dev-mysql*.us-east-1",
            "dev-mysql*.*",
            "*.us-east-1b",
            "*.us-east-1",
            "*",
        ] {
            let parsed = Grant::parse(g).unwrap();
            assert_eq!(parsed.to_string(), g);
            assert!(parsed.allows(&h("dev-mysql01"), &z("us-east-1b")), "{g}");
            assert!(
                !parsed.allows(&h("web01"), &z("eu-west-1a")) || g == "*",
                "{g}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_forms() {
        for bad in [
            "dev-mysql01",
            "*.*",
            "dev-mysql01*.*",
            "dev-mysql01.mars-1",
            "Dev.*",
            "*)(uid=*",
            "a.b.c",
            "x*y.*",
            "",
        ] {
            let e = Grant::parse(bad).unwrap_err().to_string();
            assert!(e.contains("a grant is one of: host.zone"), "{bad}: {e}");
        }
    }

    #[test]
    fn grants_only_open_what_they_name() {
        let g = Grant::parse("prod-db01.eu-west-1a").unwrap();
        assert!(!g.allows(&h("dev-mysql02"), &z("us-east-1b")));
        assert!(g.allows(&h("prod-db01"), &z("eu-west-1a")));
        assert!(Grant::parse("dev-mysql*.us-east-1")
            .unwrap()
            .allows(&h("dev-mysql02"), &z("us-east-1b")));
        assert!(!Grant::parse("dev-mysql*.us-east-1")
            .unwrap()
            .allows(&h("dev-mysql02"), &z("us-west-1b")));
    }

    #[test]
    fn escaping() {
        assert_eq!(escape_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(escape_filter_value("a\\b\0"), "a\\5cb\\00");
        assert_eq!(escape_dn_value("a,b=c+d"), "a\\,b\\=c\\+d");
        assert_eq!(escape_dn_value("#x "), "\\#x\\ ");
    }

    #[test]
    fn user_names() {
        for ok in ["alice", "_svc", "bob.smith", "a-1"] {
            assert!(check_user(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Alice",
            "*)(uid=*",
            "a b",
            "",
            "1abc",
            &"a".repeat(33),
            "al\\ice",
        ] {
            assert!(check_user(bad).is_err(), "{bad}");
        }
    }
}
