//! Validated names: products, hostnames, host groups, zones, regions and profile names.
//!
//! Every value that reaches the cloud, a tag or a DNS name goes through one of these
//! newtypes, so an invalid name cannot be built.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct NameError {
    /// What kind of name it was meant to be ("hostname", "zone", ...).
    pub what: &'static str,
    /// The text as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl NameError {
    fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Checks a DNS-label-like name: `[a-z][a-z0-9-]*`, no trailing `-`, at most `max` chars.
fn check_label(what: &'static str, s: &str, max: usize) -> Result<(), NameError> {
    let err = |reason: String| Err(NameError::new(what, s, reason));
    if s.is_empty() {
        return err("it is empty".into());
    }
    if s.len() > max {
        return err(format!(
            "it has {} characters, at most {max} are allowed",
            s.len()
        ));
    }
    let first = s.as_bytes()[0];
    if first == b'-' {
        return err("it starts with '-' (it would be read as an option)".into());
    }
    if !first.is_ascii_lowercase() {
        return err("it must start with a lowercase letter a-z".into());
    }
    if let Some((i, c)) = s
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
    {
        let hint = if c.is_ascii_uppercase() {
            format!(" (use {:?})", c.to_ascii_lowercase())
        } else {
            String::new()
        };
        return err(format!(
            "character {c:?} at position {} is not allowed; use a-z, 0-9 and '-'{hint}",
            i + 1
        ));
    }
    if s.ends_with('-') {
        return err("it ends with '-'".into());
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(
    /// A product: the namespace of a fleet (`noc`, `dev`). Its DNS domains are
    /// `<product>.private` and `<product>.public`.
    Product
);

impl Product {
    /// Parses a product name: `[a-z][a-z0-9-]*`, at most 32 characters.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_label("product", s, 32)?;
        Ok(Self(s.to_owned()))
    }

    /// The private DNS domain, `<product>.private`.
    pub fn private_domain(&self) -> String {
        format!("{}.private", self.0)
    }
}

string_newtype!(
    /// A human hostname (`demo01`, `dev-mysql01`), unique per product across all regions.
    Hostname
);

impl Hostname {
    /// Parses a hostname: `[a-z][a-z0-9-]*`, at most 63 characters, no trailing `-`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_label("hostname", s, 63)?;
        Ok(Self(s.to_owned()))
    }

    /// The host group: the hostname with its trailing digits replaced by `*`
    /// (`dev-mysql01` → `dev-mysql*`). A name without trailing digits is its own group.
    pub fn group(&self) -> HostGroup {
        let stem = self.0.trim_end_matches(|c: char| c.is_ascii_digit());
        if stem.len() == self.0.len() {
            HostGroup(self.0.clone())
        } else {
            HostGroup(format!("{stem}*"))
        }
    }

    /// The private fully qualified name, `<host>.<product>.private`.
    pub fn fqdn(&self, product: &Product) -> String {
        format!("{}.{}", self.0, product.private_domain())
    }
}

string_newtype!(
    /// The name of an instance or volume profile (`UbuntuGeneric32Bit`, `MysqlRaid10`).
    ProfileName
);

impl ProfileName {
    /// Parses a profile name: a letter, then letters, digits, `-`, `_` or `.`; at most
    /// 64 characters (it becomes a tag value and a file-friendly word).
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let err = |reason: &str| Err(NameError::new("profile name", s, reason.to_owned()));
        let mut chars = s.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_alphabetic()) {
            return err("it must start with a letter");
        }
        if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
            return err("use letters, digits, '-', '_' and '.'");
        }
        if s.len() > 64 {
            return err("it has more than 64 characters");
        }
        Ok(Self(s.to_owned()))
    }
}

/// A host group such as `dev-mysql*`: a hostname whose trailing digits became `*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct HostGroup(String);

impl HostGroup {
    /// The group as text, with its trailing `*` if any.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `us-east-1` into its parts, checking the shape `xx(-word)+-N`.
fn check_region(what: &'static str, input: &str, s: &str) -> Result<(), NameError> {
    let err = |r: &str| Err(NameError::new(what, input, r.to_owned()));
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 {
        return err("expected the form us-east-1 (region) or us-east-1b (zone)");
    }
    let (last, words) = parts.split_last().expect("len >= 3");
    if words
        .iter()
        .any(|w| w.is_empty() || !w.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return err("expected the form us-east-1 (region) or us-east-1b (zone)");
    }
    if words[0].len() != 2 {
        return err(&format!(
            "no AWS region starts with {:?}: a region starts with a two-letter area (us, eu, ap, ca, sa, me, af, il, mx), as in us-east-1",
            words[0]
        ));
    }
    if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
        return err(
            "a region ends with a number, as in us-east-1 (a zone adds a letter: us-east-1b)",
        );
    }
    Ok(())
}

string_newtype!(
    /// An AWS region such as `us-east-1`.
    Region
);

impl Region {
    /// Parses a region name of the form `us-east-1`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        check_region("region", s, s)?;
        Ok(Self(s.to_owned()))
    }
}

string_newtype!(
    /// An availability zone such as `us-east-1b`: its region plus one letter.
    Zone
);

impl Zone {
    /// Parses a zone name of the form `us-east-1b`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let Some(last) = s.chars().last() else {
            return Err(NameError::new("zone", s, "it is empty"));
        };
        if !last.is_ascii_lowercase() {
            let hint = if check_region("zone", s, s).is_ok() {
                format!("; {s} is a region, a zone adds a letter such as {s}a")
            } else {
                String::new()
            };
            return Err(NameError::new(
                "zone",
                s,
                format!("a zone ends with a letter, as in us-east-1b{hint}"),
            ));
        }
        check_region("zone", s, &s[..s.len() - 1])?;
        Ok(Self(s.to_owned()))
    }

    /// The zone's region: the zone minus its trailing letter.
    pub fn region(&self) -> Region {
        Region(self.0[..self.0.len() - 1].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_the_dns_label_rules() {
        for ok in ["demo01", "dev-mysql01", "a", &"a".repeat(63)] {
            assert!(Hostname::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Demo01", "lowercase letter"),
            ("demO1", "'O'"),
            ("dev_mysql01", "'_'"),
            ("01demo", "lowercase letter"),
            ("-oProxyCommand=x", "starts with '-'"),
            ("demo-", "ends with '-'"),
            ("demo.01", "'.'"),
            (&"a".repeat(64), "64 characters"),
        ] {
            let e = Hostname::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn uppercase_gets_a_hint() {
        let e = Hostname::parse("demoA").unwrap_err().to_string();
        assert!(e.contains("use 'a'"), "{e}");
    }

    #[test]
    fn host_group_replaces_trailing_digits() {
        let g = |s: &str| Hostname::parse(s).unwrap().group().to_string();
        assert_eq!(g("dev-mysql01"), "dev-mysql*");
        assert_eq!(g("web7"), "web*");
        assert_eq!(g("bastion"), "bastion");
        assert_eq!(g("db2-replica"), "db2-replica");
    }

    #[test]
    fn zone_knows_its_region() {
        let z = Zone::parse("ap-southeast-1a").unwrap();
        assert_eq!(z.region().as_str(), "ap-southeast-1");
        assert_eq!(
            Zone::parse("us-gov-west-1b").unwrap().region().as_str(),
            "us-gov-west-1"
        );
    }

    #[test]
    fn bad_zones_and_regions_are_refused() {
        let e = Zone::parse("us-east-1").unwrap_err().to_string();
        assert!(e.contains("us-east-1 is a region"), "{e}");
        for bad in [
            "useast1a",
            "us-east-xa",
            "US-east-1a",
            "us--1a",
            "u-east-1a",
        ] {
            assert!(Zone::parse(bad).is_err(), "{bad}");
        }
        assert!(Region::parse("us-east-1b").is_err());
        assert!(Region::parse("eu-west-1").is_ok());
    }

    #[test]
    fn fqdn_uses_the_private_domain() {
        let p = Product::parse("noc").unwrap();
        assert_eq!(
            Hostname::parse("demo01").unwrap().fqdn(&p),
            "demo01.noc.private"
        );
    }
}
