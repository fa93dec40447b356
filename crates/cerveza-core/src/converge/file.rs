//! Fleet files: the fleet a product should have, in the profiles' tagged YAML.
//!
//! ```yaml
//! --- !Fleet
//! product: noc
//! hosts:
//!   - names: web[01-12]
//!     profile: Web
//!     zones: [us-east-1a, us-east-1b, us-east-1c]
//!   - name: vpn01
//!     profile: Vpn
//!     zone: eu-west-1a
//!     state: stopped
//! ```
//!
//! Everything that can be checked without the cloud is checked here, and every problem
//! is reported at once with file, line and column: names and ranges, names given twice,
//! profiles, zones, and whether the profile has an AMI in the zone's region.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::names::{Hostname, Product, ProfileName, Region, Zone};
use crate::profile::{document_starts, find_key, yaml_error, Location, ProfileError, ProfileSet};
use crate::selection::expand_hostnames;

/// Largest fleet file read, against hostile input.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// What a host of a fleet file should be.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum DesiredState {
    /// An instance, running (the default).
    #[default]
    Running,
    /// An instance, stopped.
    Stopped,
    /// No instance; the registry keeps the host's profile and zone, and its volumes stay.
    Terminated,
}

impl DesiredState {
    /// The word in the file.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Terminated => "terminated",
        }
    }
}

/// One document of a fleet file: `--- !Fleet`.
#[derive(Debug, Deserialize)]
enum Document {
    Fleet(RawFleet),
}

/// A fleet file: the hosts a product should have. Start the document with `--- !Fleet`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[schemars(title = "Cerveza fleet file (--- !Fleet)")]
pub struct RawFleet {
    /// The product (the fleet's namespace, as `-m`); must match the configured product.
    product: String,
    /// Entries of hosts; every hostname appears in one entry only.
    #[serde(default)]
    hosts: Vec<RawEntry>,
}

/// Hosts sharing a profile and zones.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEntry {
    /// One hostname (or give `names:`).
    name: Option<String>,
    /// Hostnames and ranges: `web[01-12]`, or a list of them.
    names: Option<RawNames>,
    /// The instance profile.
    profile: String,
    /// The availability zone (or give `zones:`).
    zone: Option<String>,
    /// Zones to spread over: a numbered host N goes to zone (N-1) mod count, so growing a
    /// range moves nobody; a host already in one of them stays there.
    zones: Option<Vec<String>>,
    /// running (default), stopped or terminated.
    state: Option<DesiredState>,
}

/// `names: web[01-12]` or `names: [web01, db[01-02]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum RawNames {
    One(String),
    Many(Vec<String>),
}

impl RawNames {
    fn items(&self) -> Vec<&str> {
        match self {
            RawNames::One(s) => vec![s.as_str()],
            RawNames::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// One host of a fleet file, with its entry's settings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredHost {
    /// The host.
    pub host: Hostname,
    /// Its instance profile.
    pub profile: ProfileName,
    /// The zones its entry allows (a host already in one of them stays there).
    pub zones: Vec<Zone>,
    /// Where a new instance goes: its spread slot among `zones`.
    pub zone: Zone,
    /// What it should be.
    pub state: DesiredState,
    /// Where its entry names it.
    pub at: Location,
    /// Where its entry's zone is written (the one it goes to, in a `zones:` list).
    pub zone_at: Location,
}

/// A validated fleet file.
#[derive(Debug, Clone)]
pub struct FleetFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its product.
    pub product: Product,
    /// Every host, in file order.
    pub hosts: Vec<DesiredHost>,
}

/// Where a numbered host goes among `zones`: host N to zone (N-1) mod count, so
/// `web[01-12]` over three zones is a, b, c, a, … and adding web13 moves nobody. A name
/// without a number goes by a hash of the name (FNV-1a), the same on every machine.
pub fn spread(host: &Hostname, zones: &[Zone]) -> Option<Zone> {
    if zones.is_empty() {
        return None;
    }
    let name = host.as_str();
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &name[stem.len()..];
    let slot = match digits.parse::<u64>() {
        Ok(n) if !digits.is_empty() && digits.len() <= 18 => n.saturating_sub(1),
        _ => name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }),
    };
    Some(zones[(slot % zones.len() as u64) as usize].clone())
}

/// Reads a fleet file: at most [`MAX_FILE_BYTES`], UTF-8 (a bad byte is reported at its
/// line and column).
pub fn read(path: &Path) -> Result<String, ProfileError> {
    let io = |message: String| ProfileError::Io {
        path: path.to_owned(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(io(format!(
            "{} bytes is larger than the {MAX_FILE_BYTES} bytes a fleet file may have",
            bytes.len()
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|b| **b == b'\n').count() + 1;
        let start = good.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[start..]).chars().count() + 1;
        ProfileError::At {
            location: Location {
                file: path.to_owned(),
                line,
                column,
            },
            message: format!(
                "byte 0x{:02x} is not UTF-8; a fleet file is UTF-8 text",
                e.as_bytes()[e.utf8_error().valid_up_to()]
            ),
        }
    })
}

/// The lines of one entry of `hosts:`, to point at what it says.
struct EntryText<'t> {
    file: &'t Path,
    lines: &'t [&'t str],
    /// 1-based line of the entry's first line.
    first: usize,
}

impl EntryText<'_> {
    /// Where `key:` is written in this entry, and `value` after it when given.
    fn locate(&self, key: &str, value: Option<&str>) -> Location {
        self.locate_nth(key, value, 0)
    }

    /// [`Self::locate`] of the `nth` (from 0) `value` after `key:` (a list that names
    /// the same value twice).
    fn locate_nth(&self, key: &str, value: Option<&str>, nth: usize) -> Location {
        let pat = format!("{key}:");
        let mut at = (self.first, 1);
        if let Some((i, col)) = self
            .lines
            .iter()
            .enumerate()
            .find_map(|(i, l)| find_key(l, &pat).map(|c| (i, c)))
        {
            at = (self.first + i, col + 1);
            if let Some(v) = value {
                let after = |j: usize, l: &str| -> Vec<(usize, usize)> {
                    let from = if j == 0 { col + pat.len() } else { 0 };
                    l.get(from..)
                        .map(|rest| rest.match_indices(v).map(|(c, _)| (j, from + c)).collect())
                        .unwrap_or_default()
                };
                if let Some((j, c)) = self.lines[i..]
                    .iter()
                    .enumerate()
                    .flat_map(|(j, l)| after(j, l))
                    .nth(nth)
                {
                    at = (self.first + i + j, c + 1);
                }
            }
        }
        Location {
            file: self.file.to_owned(),
            line: at.0,
            column: at.1,
        }
    }
}

/// The line ranges of the entries of `hosts:` (block style; a flow-style list gives
/// every entry the `hosts:` line).
fn entry_ranges(lines: &[&str], count: usize) -> Vec<(usize, usize)> {
    let hosts = lines
        .iter()
        .position(|l| find_key(l, "hosts:").is_some_and(|c| c == 0 || l[..c].trim().is_empty()));
    let Some(h) = hosts else {
        return vec![(0, lines.len()); count];
    };
    let mut starts = Vec::new();
    let mut indent = None;
    for (i, l) in lines.iter().enumerate().skip(h + 1) {
        let t = l.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - t.len();
        if !(t.starts_with("- ") || t == "-") {
            if ind == 0 {
                break;
            }
            continue;
        }
        match indent {
            None => {
                indent = Some(ind);
                starts.push(i);
            }
            Some(n) if n == ind => starts.push(i),
            Some(n) if ind < n => break,
            _ => {}
        }
    }
    if starts.len() != count {
        return vec![(h, lines.len()); count];
    }
    let mut out = Vec::new();
    for (k, s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(lines.len());
        out.push((*s, end));
    }
    out
}

impl FleetFile {
    /// Reads and validates a fleet file against the profiles and the configured regions
    /// (empty: any region) and product (`None`: the file's).
    pub fn load(
        path: &Path,
        profiles: &ProfileSet,
        regions: &[Region],
        product: Option<&Product>,
    ) -> Result<Self, Vec<ProfileError>> {
        let text = read(path).map_err(|e| vec![e])?;
        Self::parse(path, &text, profiles, regions, product)
    }

    /// Validates fleet file text; see [`Self::load`].
    pub fn parse(
        path: &Path,
        text: &str,
        profiles: &ProfileSet,
        regions: &[Region],
        product: Option<&Product>,
    ) -> Result<Self, Vec<ProfileError>> {
        let at = |location: Location, message: String| ProfileError::At { location, message };
        let starts = document_starts(text);
        let mut docs = Vec::new();
        for (i, de) in yaml_serde::Deserializer::from_str(text).enumerate() {
            match Option::<Document>::deserialize(de) {
                Ok(None) => {}
                Ok(Some(Document::Fleet(raw))) => {
                    docs.push((raw, starts.get(i).copied().unwrap_or(1)))
                }
                Err(e) => {
                    let mut err = yaml_error(path, &e, starts.get(i).copied().unwrap_or(1));
                    if let ProfileError::At { message, .. } = &mut err {
                        if message.contains("expected a YAML tag")
                            || message.contains("expected enum")
                            || message.contains("unknown variant") && !message.contains("running")
                        {
                            *message = format!(
                                "{}; a fleet file starts with `--- !Fleet`",
                                message
                                    .split("; a document starts")
                                    .next()
                                    .unwrap_or(message)
                            );
                        }
                    }
                    return Err(vec![err]);
                }
            }
        }
        let (raw, first_line) = match docs.len() {
            1 => docs.remove(0),
            0 => {
                return Err(vec![at(
                    Location {
                        file: path.to_owned(),
                        line: 1,
                        column: 1,
                    },
                    "the file holds no `--- !Fleet` document".into(),
                )])
            }
            n => {
                return Err(vec![at(
                    Location {
                        file: path.to_owned(),
                        line: starts.get(1).copied().unwrap_or(1),
                        column: 1,
                    },
                    format!("the file holds {n} documents; one `--- !Fleet` per file"),
                )])
            }
        };
        let all: Vec<&str> = text.lines().collect();
        let end = starts
            .iter()
            .copied()
            .find(|s| *s > first_line)
            .map(|s| s - 1)
            .unwrap_or(all.len());
        let doc_lines = &all[first_line.saturating_sub(1).min(all.len())..end.min(all.len())];
        let doc = EntryText {
            file: path,
            lines: doc_lines,
            first: first_line,
        };
        let mut errors = Vec::new();
        let product_at = doc.locate("product", Some(&raw.product));
        let file_product = match Product::parse(&raw.product) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(at(product_at.clone(), e.to_string()));
                None
            }
        };
        if let (Some(fp), Some(cp)) = (&file_product, product) {
            if fp != cp {
                errors.push(at(
                    product_at,
                    format!("the file is for product {fp}, but cerveza is set to product {cp} (-m / CERVEZA_PRODUCT)"),
                ));
            }
        }
        let ranges = entry_ranges(doc_lines, raw.hosts.len());
        let mut hosts: Vec<DesiredHost> = Vec::new();
        let mut named: BTreeMap<Hostname, Location> = BTreeMap::new();
        for (entry, (s, e)) in raw.hosts.iter().zip(ranges) {
            let text = EntryText {
                file: path,
                lines: &doc_lines[s..e],
                first: first_line + s,
            };
            match resolve_entry(entry, &text, profiles, regions, &mut named) {
                Ok(mut h) => hosts.append(&mut h),
                Err(mut e) => errors.append(&mut e),
            }
        }
        match (errors.is_empty(), file_product) {
            (true, Some(product)) => Ok(FleetFile {
                path: path.to_owned(),
                product,
                hosts,
            }),
            _ => Err(errors),
        }
    }
}

fn resolve_entry(
    entry: &RawEntry,
    text: &EntryText<'_>,
    profiles: &ProfileSet,
    regions: &[Region],
    named: &mut BTreeMap<Hostname, Location>,
) -> Result<Vec<DesiredHost>, Vec<ProfileError>> {
    let at = |location: Location, message: String| ProfileError::At { location, message };
    let mut errors = Vec::new();
    let first = text.lines.first().copied().unwrap_or("");
    let entry_at = Location {
        file: text.file.to_owned(),
        line: text.first,
        column: first.len() - first.trim_start().len() + 1,
    };
    // Names.
    let items: Vec<(&str, &str)> = match (&entry.name, &entry.names) {
        (Some(n), None) => vec![("name", n.as_str())],
        (None, Some(ns)) => ns.items().into_iter().map(|i| ("names", i)).collect(),
        (Some(_), Some(_)) => {
            errors.push(at(
                text.locate("name", None),
                "give `name:` (one host) or `names:` (ranges, lists), not both".into(),
            ));
            Vec::new()
        }
        (None, None) => {
            errors.push(at(
                entry_at.clone(),
                "the entry names no host: add `name: web01` or `names: web[01-12]`".into(),
            ));
            Vec::new()
        }
    };
    let mut mine: Vec<(Hostname, Location)> = Vec::new();
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, item) in items {
        let n = times.entry(item).or_default();
        let loc = text.locate_nth(key, Some(item), *n);
        *n += 1;
        match expand_hostnames(&[item]) {
            Ok(hs) => mine.extend(hs.into_iter().map(|h| (h, loc.clone()))),
            Err(e) => errors.push(at(loc, e.to_string())),
        }
    }
    for (h, loc) in &mine {
        if let Some(first) = named.get(h) {
            errors.push(at(
                loc.clone(),
                format!("{h} is named twice: here and at {first}; a host belongs to one entry"),
            ));
        } else {
            named.insert(h.clone(), loc.clone());
        }
    }
    // Profile.
    let profile_at = text.locate("profile", Some(&entry.profile));
    let profile = match profiles.instance(&entry.profile) {
        Ok(p) if p.is_abstract => {
            errors.push(at(
                profile_at.clone(),
                format!(
                    "profile {:?} is abstract (a base for `extends:`, defined at {}) and cannot be launched",
                    entry.profile, p.source
                ),
            ));
            None
        }
        Ok(p) => Some(p),
        Err(e) => {
            errors.push(at(profile_at.clone(), e.to_string()));
            None
        }
    };
    // Zones.
    let (zone_key, zone_items): (&str, Vec<&str>) = match (&entry.zone, &entry.zones) {
        (Some(z), None) => ("zone", vec![z.as_str()]),
        (None, Some(zs)) if !zs.is_empty() => ("zones", zs.iter().map(String::as_str).collect()),
        (None, Some(_)) => {
            errors.push(at(
                text.locate("zones", None),
                "`zones:` is empty; list at least one zone".into(),
            ));
            ("zones", Vec::new())
        }
        (Some(_), Some(_)) => {
            errors.push(at(
                text.locate("zone", None),
                "give `zone:` or `zones:` (to spread), not both".into(),
            ));
            ("zone", Vec::new())
        }
        (None, None) => {
            errors.push(at(
                entry_at.clone(),
                "the entry has no zone: add `zone: us-east-1a` or `zones: [us-east-1a, us-east-1b]`"
                    .into(),
            ));
            ("zone", Vec::new())
        }
    };
    let mut zone_at: BTreeMap<Zone, Location> = BTreeMap::new();
    let mut zones: Vec<Zone> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for z in zone_items {
        let n = times.entry(z).or_default();
        let loc = text.locate_nth(zone_key, Some(z), *n);
        *n += 1;
        let zone = match Zone::parse(z) {
            Ok(zone) => zone,
            Err(e) => {
                errors.push(at(loc, e.to_string()));
                continue;
            }
        };
        if !seen.insert(zone.clone()) {
            errors.push(at(loc, format!("zone {zone} is listed twice")));
            continue;
        }
        zone_at.insert(zone.clone(), loc.clone());
        let region = zone.region();
        if !regions.is_empty() && !regions.contains(&region) {
            let known: Vec<&str> = regions.iter().map(Region::as_str).collect();
            errors.push(at(
                loc,
                format!(
                    "zone {zone} is in region {region}, which is not a configured region ({}); add it to `regions` in the config",
                    known.join(", ")
                ),
            ));
            continue;
        }
        if let Some(p) = profile {
            if let Err(e) = p.ami_for(&region) {
                let message = match e {
                    ProfileError::NoAmi {
                        location,
                        available,
                        ..
                    } => format!(
                        "profile {:?} has no AMI for region {region} (it has: {available}); add `{region}: ami-…` under `ami:` at {location}",
                        p.name.as_str()
                    ),
                    other => other.to_string(),
                };
                errors.push(at(loc, message));
                continue;
            }
        }
        zones.push(zone);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(profile) = profile else {
        return Err(errors);
    };
    let state = entry.state.unwrap_or_default();
    Ok(mine
        .into_iter()
        .filter_map(|(host, at)| {
            let zone = spread(&host, &zones)?;
            let zone_at = zone_at.get(&zone).cloned().unwrap_or_else(|| at.clone());
            Some(DesiredHost {
                host,
                profile: profile.name.clone(),
                zones: zones.clone(),
                zone,
                state,
                at,
                zone_at,
            })
        })
        .collect())
}

/// The JSON Schema of fleet files, for editors (the YAML language server): declare the
/// `!Fleet` tag as a custom mapping tag.
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawFleet)).unwrap_or_default()
}

#[cfg(test)]
mod tests;
