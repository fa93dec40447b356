//! Selections: which hosts a command acts on.
//!
//! ```text
//! demo01                 one host
//! dev-mysql*  web?1      globs (* any run, ? one character)
//! web[01-05,07]          numeric ranges; the width of the bounds is kept (01, not 1)
//! @dev-mysql             a host group: dev-mysql01, dev-mysql02, … (also @dev-mysql*)
//! zone:us-east-1b        every host in a zone
//! region:us-east-1       every host in a region
//! profile:Web            every host launched with a profile
//! a,b,!web03             union with ',', exclusion with a leading '!'
//! ```
//!
//! [`expand_hostnames`] turns names and ranges (no globs) into the list of hostnames
//! that `start` creates.

use std::fmt;

use crate::names::{Hostname, NameError, Region, Zone};

/// Most hostnames one range expression may produce.
pub const MAX_EXPANSION: usize = 10_000;

/// A selection that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid selection {input:?}: {reason}")]
pub struct SelectionError {
    /// The selection as given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Star,
    One,
    Range(Vec<String>),
}

/// A hostname pattern: literals, `*`, `?` and `[..]` ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segs: Vec<Seg>,
}

impl Pattern {
    fn is_literal(&self) -> bool {
        self.segs.iter().all(|s| matches!(s, Seg::Lit(_)))
    }

    /// Whether `host` matches.
    pub fn matches(&self, host: &str) -> bool {
        fn go(segs: &[Seg], s: &str) -> bool {
            match segs.split_first() {
                None => s.is_empty(),
                Some((Seg::Lit(l), rest)) => {
                    s.strip_prefix(l.as_str()).is_some_and(|t| go(rest, t))
                }
                Some((Seg::One, rest)) => {
                    let mut c = s.chars();
                    c.next().is_some() && go(rest, c.as_str())
                }
                Some((Seg::Star, rest)) => (0..=s.len())
                    .filter(|&i| s.is_char_boundary(i))
                    .any(|i| go(rest, &s[i..])),
                Some((Seg::Range(opts), rest)) => opts
                    .iter()
                    .any(|o| s.strip_prefix(o.as_str()).is_some_and(|t| go(rest, t))),
            }
        }
        go(&self.segs, host)
    }

    /// Every name a pattern of literals and ranges stands for, in order.
    /// The names a glob-free pattern stands for, at most `MAX_EXPANSION + 1` of them
    /// (`a[1-9999][1-9999]` must not build 10⁸ strings before being refused).
    fn expand(&self) -> Option<Vec<String>> {
        let mut out = vec![String::new()];
        for seg in &self.segs {
            match seg {
                Seg::Lit(l) => out.iter_mut().for_each(|o| o.push_str(l)),
                Seg::Range(opts) => {
                    out = out
                        .iter()
                        .flat_map(|o| opts.iter().map(move |x| format!("{o}{x}")))
                        .take(MAX_EXPANSION + 1)
                        .collect();
                }
                Seg::Star | Seg::One => return None,
            }
        }
        Some(out)
    }
}

/// One term of a selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Hostnames matching a pattern.
    Host(Pattern),
    /// Hosts in a zone.
    Zone(Zone),
    /// Hosts in a region.
    Region(Region),
    /// Hosts launched with a profile.
    Profile(String),
    /// Hosts of a host group, kept as `dev-mysql*`.
    Group(String),
}

/// What a term is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The hostname.
    pub host: &'a str,
    /// Its zone, if known.
    pub zone: Option<&'a str>,
    /// Its region.
    pub region: &'a str,
    /// Its profile, if known.
    pub profile: Option<&'a str>,
}

impl Term {
    fn matches(&self, c: &Candidate<'_>) -> bool {
        match self {
            Term::Host(p) => p.matches(c.host),
            Term::Zone(z) => c.zone == Some(z.as_str()),
            Term::Region(r) => c.region == r.as_str(),
            Term::Profile(p) => c.profile == Some(p.as_str()),
            Term::Group(g) => Hostname::parse(c.host).is_ok_and(|h| h.group().as_str() == g),
        }
    }
}

/// A parsed selection: the union of its terms minus its exclusions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selection {
    text: String,
    include: Vec<Term>,
    exclude: Vec<Term>,
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.text.is_empty() {
            "*"
        } else {
            &self.text
        })
    }
}

/// Splits at commas that are not inside brackets.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_range(
    body: &str,
    err: &dyn Fn(String) -> SelectionError,
) -> Result<Vec<String>, SelectionError> {
    let mut out = Vec::new();
    for part in body.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(lo) || !digits(hi) {
            return Err(err(format!(
                "[{body}]: a range holds numbers like 01-05 or 1,3,7"
            )));
        }
        let (a, b): (u64, u64) = (lo.parse().unwrap_or(0), hi.parse().unwrap_or(0));
        if a > b {
            return Err(err(format!("[{body}]: {lo}-{hi} runs backwards")));
        }
        let width = if lo.starts_with('0') || hi.starts_with('0') {
            lo.len().max(hi.len())
        } else {
            0
        };
        if out.len() as u64 + (b - a + 1) > MAX_EXPANSION as u64 {
            return Err(err(format!(
                "[{body}] stands for more than {MAX_EXPANSION} names"
            )));
        }
        out.extend((a..=b).map(|n| format!("{n:0width$}")));
    }
    Ok(out)
}

fn parse_pattern(text: &str, whole: &str) -> Result<Pattern, SelectionError> {
    let err = |reason: String| SelectionError {
        input: whole.to_owned(),
        reason,
    };
    if text.starts_with('-') {
        return Err(err(format!("{text:?} starts with '-'")));
    }
    let mut segs = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            'a'..='z' | '0'..='9' | '-' => lit.push(c),
            '*' | '?' | '[' => {
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                match c {
                    '*' => segs.push(Seg::Star),
                    '?' => segs.push(Seg::One),
                    _ => {
                        let rest = &text[i + 1..];
                        let Some(end) = rest.find(']') else {
                            return Err(err(format!("{text:?}: '[' without ']'")));
                        };
                        segs.push(Seg::Range(parse_range(&rest[..end], &err)?));
                        for _ in 0..=end {
                            chars.next();
                        }
                    }
                }
            }
            other => {
                return Err(err(format!(
                    "{text:?}: character {other:?} is not allowed in a hostname pattern (a-z 0-9 - * ? [ranges])"
                )))
            }
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    if segs.is_empty() {
        return Err(err("an empty term".into()));
    }
    Ok(Pattern {
        text: text.to_owned(),
        segs,
    })
}

impl Selection {
    /// Everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Parses a selection (see the module docs for the grammar).
    pub fn parse(input: &str) -> Result<Self, SelectionError> {
        let err = |reason: String| SelectionError {
            input: input.to_owned(),
            reason,
        };
        let mut sel = Selection {
            text: input.to_owned(),
            ..Self::default()
        };
        if input.trim().is_empty() {
            return Err(err("it is empty".into()));
        }
        for item in split_top(input) {
            let item = item.trim();
            let (negated, body) = match item.strip_prefix('!') {
                Some(b) => (true, b),
                None => (false, item),
            };
            if body.is_empty() {
                return Err(err("an empty term (two commas, or a lone '!')".into()));
            }
            let name_err = |e: NameError| err(e.to_string());
            let term = if let Some(z) = body.strip_prefix("zone:") {
                Term::Zone(Zone::parse(z).map_err(name_err)?)
            } else if let Some(r) = body.strip_prefix("region:") {
                Term::Region(Region::parse(r).map_err(name_err)?)
            } else if let Some(g) = body.strip_prefix('@') {
                let stem = g.strip_suffix('*').unwrap_or(g);
                let h = Hostname::parse(stem).map_err(name_err)?;
                if stem.ends_with(|c: char| c.is_ascii_digit()) {
                    return Err(err(format!(
                        "@{g}: a host group is a hostname without its trailing digits (@dev-mysql)"
                    )));
                }
                Term::Group(format!("{h}*"))
            } else if let Some(p) = body.strip_prefix("profile:") {
                if p.is_empty() {
                    return Err(err("profile: needs a profile name".into()));
                }
                Term::Profile(p.to_owned())
            } else if let Some((key, _)) = body.split_once(':') {
                return Err(err(format!(
                    "unknown key {key:?}; use zone:, region: or profile:"
                )));
            } else {
                Term::Host(parse_pattern(body, input)?)
            };
            if negated {
                sel.exclude.push(term);
            } else {
                sel.include.push(term);
            }
        }
        Ok(sel)
    }

    /// Parses several selection arguments as one union (`list web* db*`).
    pub fn parse_all<S: AsRef<str>>(args: &[S]) -> Result<Self, SelectionError> {
        if args.is_empty() {
            return Ok(Self::all());
        }
        let joined = args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",");
        Self::parse(&joined)
    }

    /// Whether the selection is everything.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether a host is selected.
    pub fn matches(&self, c: &Candidate<'_>) -> bool {
        (self.include.is_empty() || self.include.iter().any(|t| t.matches(c)))
            && !self.exclude.iter().any(|t| t.matches(c))
    }

    /// For `remote`: every plain word that names none of `known` becomes "hosts whose
    /// name contains it" (`mysql` → `*mysql*`). Returns the new selection and a note per
    /// word changed, to tell the user.
    pub fn with_substrings(&self, known: &[&str]) -> (Selection, Vec<String>) {
        let mut notes = Vec::new();
        let mut out = self.clone();
        for term in &mut out.include {
            if let Term::Host(p) = term {
                if p.is_literal() && !known.contains(&p.text.as_str()) {
                    notes.push(format!(
                        "{:?} names no host: selecting the hosts whose name contains it",
                        p.text
                    ));
                    let mut segs = vec![Seg::Star];
                    segs.extend(p.segs.iter().cloned());
                    segs.push(Seg::Star);
                    *p = Pattern {
                        text: format!("*{}*", p.text),
                        segs,
                    };
                }
            }
        }
        (out, notes)
    }

    /// The hostnames that match exactly one name without globs, when the selection is
    /// only that (lets `show`/`stop` skip a fleet-wide listing).
    pub fn literal_hosts(&self) -> Option<Vec<&str>> {
        if !self.exclude.is_empty() || self.include.is_empty() {
            return None;
        }
        self.include
            .iter()
            .map(|t| match t {
                Term::Host(p) if p.is_literal() => Some(p.text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Expands hostnames and ranges (`demo01 web[01-05]`) into distinct hostnames, in order.
/// Globs and `key:` terms are refused: `start` creates hosts, it does not search for them.
/// A plain name is checked by [`Hostname::parse`], so its error explains the rules.
pub fn expand_hostnames<S: AsRef<str>>(args: &[S]) -> Result<Vec<Hostname>, crate::Error> {
    let mut out: Vec<Hostname> = Vec::new();
    // Dedup by set: `contains` on the Vec made 10,000 names cost 50 million compares.
    let mut seen: std::collections::HashSet<Hostname> = std::collections::HashSet::new();
    for arg in args {
        let arg = arg.as_ref();
        for item in split_top(arg) {
            let err = |reason: String| SelectionError {
                input: arg.to_owned(),
                reason,
            };
            let names = if !item.contains(['[', '*', '?', ':', '!']) {
                vec![Hostname::parse(item)?.to_string()]
            } else if item.contains(':') || item.starts_with('!') {
                return Err(err(format!(
                    "{item:?}: only hostnames and ranges like web[01-05] name hosts to create"
                ))
                .into());
            } else {
                parse_pattern(item, arg)?.expand().ok_or_else(|| {
                    err(format!("{item:?}: globs select existing hosts; name the hosts to create, e.g. web[01-05]"))
                })?
            };
            for n in names {
                let h = Hostname::parse(&n)?;
                if seen.insert(h.clone()) {
                    out.push(h);
                }
            }
            if out.len() > MAX_EXPANSION {
                return Err(err(format!("more than {MAX_EXPANSION} hostnames")).into());
            }
        }
    }
    Ok(out)
}

/// Folds hostnames into range notation: `web01 web02 web03 web07` → `web[01-03,07]`.
pub fn fold_hostnames<S: AsRef<str>>(hosts: &[S]) -> String {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(String, usize), Vec<u64>> = BTreeMap::new();
    let mut plain = Vec::new();
    for h in hosts {
        let h = h.as_ref();
        let stem = h.trim_end_matches(|c: char| c.is_ascii_digit());
        let digits = &h[stem.len()..];
        match digits.parse::<u64>() {
            Ok(n) if !digits.is_empty() && digits.len() <= 9 => groups
                .entry((stem.to_owned(), digits.len()))
                .or_default()
                .push(n),
            _ => plain.push(h.to_owned()),
        }
    }
    let mut out = plain;
    for ((stem, width), mut nums) in groups {
        nums.sort_unstable();
        nums.dedup();
        if nums.len() == 1 {
            out.push(format!("{stem}{:0width$}", nums[0]));
            continue;
        }
        let mut parts = Vec::new();
        let mut i = 0;
        while i < nums.len() {
            let mut j = i;
            while j + 1 < nums.len() && nums[j + 1] == nums[j] + 1 {
                j += 1;
            }
            parts.push(if i == j {
                format!("{:0width$}", nums[i])
            } else {
                format!("{:0width$}-{:0width$}", nums[i], nums[j])
            });
            i = j + 1;
        }
        out.push(format!("{stem}[{}]", parts.join(",")));
    }
    out.sort();
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(host: &'a str, zone: &'a str, profile: &'a str) -> Candidate<'a> {
        Candidate {
            host,
            zone: Some(zone),
            region: &zone[..zone.len() - 1],
            profile: Some(profile),
        }
    }

    fn hosts(args: &[&str]) -> Vec<String> {
        expand_hostnames(args)
            .unwrap()
            .into_iter()
            .map(|h| h.to_string())
            .collect()
    }

    #[test]
    fn ranges_expand_with_their_width() {
        assert_eq!(
            hosts(&["web[01-03,07]"]),
            ["web01", "web02", "web03", "web07"]
        );
        assert_eq!(hosts(&["db[8-10]"]), ["db8", "db9", "db10"]);
        assert_eq!(
            hosts(&["demo01", "web[1-2]", "demo01"]),
            ["demo01", "web1", "web2"]
        );
        assert_eq!(hosts(&["a[1-2]b[1-2]"]), ["a1b1", "a1b2", "a2b1", "a2b2"]);
    }

    #[test]
    fn ranges_that_multiply_past_the_limit_are_refused_without_building_them() {
        // 9999³ names would take gigabytes before the count was checked.
        let e = expand_hostnames(&["a[1-9999]b[1-9999]c[1-9999]"]).unwrap_err();
        assert!(e.to_string().contains("more than 10000 hostnames"), "{e}");
    }

    #[test]
    fn start_refuses_globs_keys_and_options() {
        for bad in [
            "web*",
            "zone:us-east-1a",
            "-oProxyCommand=x",
            "web[05-01]",
            "web[a-b]",
            "Web01",
            "web[1-",
        ] {
            assert!(expand_hostnames(&[bad]).is_err(), "{bad}");
        }
        let e = expand_hostnames(&["web[1-20000]"]).unwrap_err().to_string();
        assert!(e.contains("more than 10000"), "{e}");
    }

    #[test]
    fn globs_ranges_and_keys_select() {
        let s = Selection::parse("dev-mysql*,web[01-02],!web02").unwrap();
        assert!(s.matches(&cand("dev-mysql01", "us-east-1b", "P")));
        assert!(s.matches(&cand("web01", "us-east-1b", "P")));
        assert!(!s.matches(&cand("web02", "us-east-1b", "P")));
        assert!(!s.matches(&cand("web1", "us-east-1b", "P")));
        let z = Selection::parse("zone:us-east-1b").unwrap();
        assert!(z.matches(&cand("x", "us-east-1b", "P")));
        assert!(!z.matches(&cand("x", "us-east-1a", "P")));
        let r = Selection::parse("region:us-east-1,profile:Web").unwrap();
        assert!(r.matches(&cand("x", "us-east-1a", "Other")));
        assert!(r.matches(&cand("x", "eu-west-1a", "Web")));
        assert!(!r.matches(&cand("x", "eu-west-1a", "Other")));
        let q = Selection::parse("web?1").unwrap();
        assert!(q.matches(&cand("web01", "us-east-1a", "P")));
        assert!(!q.matches(&cand("web001", "us-east-1a", "P")));
    }

    #[test]
    fn host_groups_select_their_members() {
        let s = Selection::parse("@dev-mysql").unwrap();
        assert!(s.matches(&cand("dev-mysql01", "us-east-1b", "P")));
        assert!(s.matches(&cand("dev-mysql2", "us-east-1b", "P")));
        assert!(!s.matches(&cand("dev-mysql-backup01", "us-east-1b", "P")));
        assert!(!s.matches(&cand("web01", "us-east-1b", "P")));
        let starred = Selection::parse("@dev-mysql*").unwrap();
        assert!(starred.matches(&cand("dev-mysql01", "us-east-1b", "P")));
        assert!(!starred.matches(&cand("web01", "us-east-1b", "P")));
        assert!(Selection::parse("@web01").is_err());
    }

    #[test]
    fn bad_selections_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("a,,b", "empty term"),
            ("colour:red", "unknown key"),
            ("zone:us-east-1", "is a region"),
            ("a b", "' '"),
            ("x)(uid=*", "')'"),
        ] {
            let e = Selection::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bare_word_that_names_no_host_selects_by_substring() {
        let s = Selection::parse("mysql,web01").unwrap();
        let (sub, notes) = s.with_substrings(&["web01", "dev-mysql01"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(sub.matches(&cand("dev-mysql01", "us-east-1b", "P")));
        assert!(sub.matches(&cand("web01", "us-east-1b", "P")));
        assert!(!sub.matches(&cand("web02", "us-east-1b", "P")));
        let (same, notes) = Selection::parse("web01")
            .unwrap()
            .with_substrings(&["web01"]);
        assert!(notes.is_empty());
        assert!(!same.matches(&cand("web011", "us-east-1b", "P")));
    }

    #[test]
    fn literal_hosts_only_for_plain_names() {
        assert_eq!(
            Selection::parse("a,b").unwrap().literal_hosts(),
            Some(vec!["a", "b"])
        );
        assert_eq!(Selection::parse("a*").unwrap().literal_hosts(), None);
        assert_eq!(Selection::all().literal_hosts(), None);
    }

    #[test]
    fn folding_is_the_inverse_of_ranges() {
        assert_eq!(
            fold_hostnames(&["web01", "web02", "web03", "web07", "db1", "bastion"]),
            "bastion,db1,web[01-03,07]"
        );
        let back = hosts(&["web[01-03,07]"]);
        assert_eq!(fold_hostnames(&back), "web[01-03,07]");
    }
}
