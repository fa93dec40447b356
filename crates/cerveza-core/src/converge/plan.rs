//! The difference between a fleet file and the fleet: one row per host, and what it saw,
//! so a saved plan can tell when the fleet moved under it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::file::{DesiredHost, DesiredState, FleetFile};
use crate::model::{HostRecord, Instance, InstanceId, InstanceState};
use crate::names::{Hostname, Product, ProfileName, Region, Zone};

/// The version of the saved plan format (`cerveza plan -o json`).
pub const FORMAT: u32 = 1;

/// What the fleet is now: one registry read and one listing per region.
#[derive(Debug, Clone, Default)]
pub struct Survey {
    /// Every registry record of the product (empty when the registry did not answer).
    pub records: Vec<HostRecord>,
    /// Why the registry could not be read, when it could not.
    pub registry_error: Option<String>,
    /// The product's live instances in every region that answered.
    pub instances: Vec<Instance>,
    /// Regions that did not answer, with why.
    pub failed_regions: Vec<(Region, String)>,
}

/// What a plan does to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// A new host: claim the name, launch an instance.
    Launch,
    /// A known host whose instance is gone: launch a new one like it.
    Relaunch,
    /// Start its stopped instance.
    Start,
    /// Stop its running instance.
    Stop,
    /// Terminate its instance; the registry keeps its profile and zone, its volumes stay.
    Terminate,
    /// In the state the file says, but unfinished: its registry record disagrees with its
    /// instance (a start or stop cut short before its volumes, Elastic IP and names were
    /// done, or a record missing): the same start, stop or terminate again finishes it.
    Repair,
    /// Its profile or zone changed: terminate, forget, launch anew (only with `--replace`).
    Replace,
    /// Its zone changed and it has data volumes: stop it, back its data up, restore the
    /// set in the new zone (a copy of it, in another region) and start it there, as
    /// `cerveza move` does (only with `--replace`).
    Move,
    /// Not in the file: terminate and forget (only with `--prune`); its volumes stay.
    Prune,
    /// Not in the file, and left alone (drift).
    Unmanaged,
    /// As the file says.
    Nothing,
}

impl Change {
    /// The word in the table and the JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Launch => "launch",
            Self::Relaunch => "relaunch",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Terminate => "terminate",
            Self::Repair => "repair",
            Self::Replace => "replace",
            Self::Move => "move",
            Self::Prune => "prune",
            Self::Unmanaged => "unmanaged",
            Self::Nothing => "nothing",
        }
    }

    /// Every kind, in the order summaries list them.
    pub const ALL: [Change; 11] = [
        Change::Launch,
        Change::Relaunch,
        Change::Start,
        Change::Stop,
        Change::Terminate,
        Change::Repair,
        Change::Replace,
        Change::Move,
        Change::Prune,
        Change::Unmanaged,
        Change::Nothing,
    ];
}

/// What a host is now, as the plan saw it. A saved plan is refused when any of this
/// changed for any host it covers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Have {
    /// The registry record's launch generation (`None`: no record).
    pub generation: Option<u64>,
    /// When the record was last written (seconds since the epoch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<i64>,
    /// Its profile (record, else the instance's tag).
    pub profile: Option<ProfileName>,
    /// Its zone (the instance's, else the record's).
    pub zone: Option<Zone>,
    /// Its live instance.
    pub instance: Option<InstanceId>,
    /// That instance's state; without one, what the record last saw.
    pub state: Option<InstanceState>,
    /// The instance the registry record names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_instance: Option<InstanceId>,
    /// The state the registry record last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_state: Option<InstanceState>,
}

impl Have {
    fn of(record: Option<&HostRecord>, live: Option<&Instance>) -> Self {
        Self {
            generation: record.map(|r| r.generation),
            updated_at: record.map(|r| r.updated_at),
            profile: record.map(|r| r.profile.clone()).or_else(|| {
                live.and_then(|i| i.profile())
                    .and_then(|p| ProfileName::parse(p).ok())
            }),
            zone: live
                .and_then(|i| i.zone.clone())
                .or_else(|| record.map(|r| r.zone.clone())),
            instance: live.map(|i| i.id.clone()),
            state: live
                .map(|i| i.state.clone())
                .or_else(|| record.map(|r| r.state.clone())),
            recorded_instance: record.and_then(|r| r.instance_id.clone()),
            recorded_state: record.map(|r| r.state.clone()),
        }
    }

    /// Why a host that is as the file says is unfinished, when it is: its record
    /// disagrees with its instance (the record is written last, once a start or stop is
    /// complete), or it has none.
    fn unfinished(&self, want: DesiredState) -> Option<String> {
        let recorded = || {
            let state = self
                .recorded_state
                .as_ref()
                .map(InstanceState::name)
                .unwrap_or("nothing");
            match &self.recorded_instance {
                Some(i) => format!("{i} {state}"),
                None => format!("no instance, {state}"),
            }
        };
        match (&self.instance, &self.state) {
            (Some(_), _) if self.generation.is_none() => {
                Some("no registry record: record it, finish its volumes and names".into())
            }
            (Some(i), Some(s))
                if self.recorded_instance.as_ref() != Some(i)
                    || self.recorded_state.as_ref() != Some(s) =>
            {
                Some(format!(
                    "its record says {}: finish its volumes, names and record",
                    recorded()
                ))
            }
            (None, _)
                if want == DesiredState::Terminated
                    && self.generation.is_some()
                    && !self
                        .recorded_state
                        .as_ref()
                        .is_some_and(InstanceState::is_gone) =>
            {
                Some(format!(
                    "its record says {}: record it terminated",
                    recorded()
                ))
            }
            _ => None,
        }
    }

    fn exists(&self) -> bool {
        self.generation.is_some() || self.instance.is_some()
    }
}

/// What the file wants of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    /// Its profile.
    pub profile: ProfileName,
    /// The zone it is in, or goes to.
    pub zone: Zone,
    /// Its state.
    pub state: DesiredState,
}

/// One host of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    /// The host.
    pub host: Hostname,
    /// What the plan does.
    pub change: Change,
    /// Why the change will not be made, when it will not (a replace without
    /// `--replace`, a region that did not answer, several live instances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
    /// After a launch or relaunch, stop it (`state: stopped`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub then_stop: bool,
    /// What differs, for people ("profile Web → WebLarge").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// What the file wants (`None`: not in the file).
    pub want: Option<Want>,
    /// What the plan saw.
    pub have: Have,
}

impl Row {
    /// A replace that only changes the zone of a host with data volumes becomes a move:
    /// its data goes with it (a replace would launch it away from its volumes). Held as
    /// the replace was, with its own reason.
    pub fn into_move(&mut self) {
        let Some(want) = &self.want else { return };
        if self.change != Change::Replace
            || self.have.profile.as_ref() != Some(&want.profile)
            || self.have.zone.as_ref() == Some(&want.zone)
        {
            return;
        }
        self.change = Change::Move;
        self.detail = format!(
            "{}; its data moves with it (stopped, backed up, restored there)",
            self.detail
        );
        if self.held.is_some() {
            self.held = Some(format!(
                "a move stops it while its data is backed up and restored in {}; `--replace {}` to do it",
                want.zone, self.host
            ));
        }
    }

    /// Whether apply acts on this host.
    pub fn acts(&self) -> bool {
        self.held.is_none() && !matches!(self.change, Change::Nothing | Change::Unmanaged)
    }
}

/// A plan: every host of the file and every host of the product, with what apply does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// [`FORMAT`].
    pub format: u32,
    /// The product.
    pub product: Product,
    /// The fleet file it was made from.
    pub file: String,
    /// The regions it read.
    pub regions: Vec<Region>,
    /// Hosts `--replace` allowed to be replaced (or moved with their data).
    #[serde(default)]
    pub replace: Vec<Hostname>,
    /// Whether hosts not in the file are pruned.
    #[serde(default)]
    pub prune: bool,
    /// Why the registry could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_error: Option<String>,
    /// Regions that did not answer, with why: their hosts are held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_regions: Vec<(Region, String)>,
    /// One row per host: the file's hosts in file order, then the others by name.
    pub hosts: Vec<Row>,
    /// How many hosts of each change (held ones included), and how many are held.
    pub summary: BTreeMap<String, usize>,
}

/// Options of a plan.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Hosts whose profile or zone change may replace them.
    pub replace: Vec<Hostname>,
    /// Terminate and forget hosts of the product the file does not name.
    pub prune: bool,
}

/// Why `--replace` names a host the plan would not replace.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--replace {host}: {why}")]
pub struct ReplaceError {
    /// The host named.
    pub host: Hostname,
    /// What the plan does with it instead.
    pub why: String,
}

/// What each host is now: its record and live instances.
struct Current<'s> {
    record: Option<&'s HostRecord>,
    live: Vec<&'s Instance>,
}

fn current(survey: &Survey) -> BTreeMap<Hostname, Current<'_>> {
    let mut out: BTreeMap<Hostname, Current<'_>> = BTreeMap::new();
    for r in &survey.records {
        out.entry(r.hostname.clone())
            .or_insert(Current {
                record: None,
                live: Vec::new(),
            })
            .record = Some(r);
    }
    for i in survey.instances.iter().filter(|i| !i.state.is_gone()) {
        let Some(h) = i.host().and_then(|h| Hostname::parse(h).ok()) else {
            continue;
        };
        out.entry(h)
            .or_insert(Current {
                record: None,
                live: Vec::new(),
            })
            .live
            .push(i);
    }
    out
}

/// What every host covered by the file and the product is now, for a saved plan's check.
pub fn seen(file_hosts: &[Hostname], survey: &Survey) -> BTreeMap<Hostname, Have> {
    let cur = current(survey);
    let mut out: BTreeMap<Hostname, Have> = cur
        .iter()
        .map(|(h, c)| (h.clone(), Have::of(c.record, c.live.first().copied())))
        .collect();
    for h in file_hosts {
        out.entry(h.clone()).or_default();
    }
    out
}

/// How many rows of each change, and how many held.
pub(crate) fn summarize(rows: &[Row]) -> BTreeMap<String, usize> {
    let mut summary: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows {
        *summary.entry(r.change.name().to_owned()).or_default() += 1;
        if r.held.is_some() {
            *summary.entry("held".to_owned()).or_default() += 1;
        }
    }
    summary
}

/// The plan of `file` against `survey`.
pub fn diff(file: &FleetFile, survey: &Survey, opts: &Options) -> Result<Plan, ReplaceError> {
    let cur = current(survey);
    let failed: BTreeMap<&Region, &str> = survey
        .failed_regions
        .iter()
        .map(|(r, e)| (r, e.as_str()))
        .collect();
    let replace: BTreeSet<&Hostname> = opts.replace.iter().collect();
    let mut rows = Vec::new();
    let named: BTreeSet<&Hostname> = file.hosts.iter().map(|d| &d.host).collect();
    for d in &file.hosts {
        let c = cur.get(&d.host);
        rows.push(row_for(
            d,
            c.and_then(|c| c.record),
            c.map(|c| c.live.as_slice()).unwrap_or(&[]),
            &failed,
            survey.registry_error.as_deref(),
            replace.contains(&d.host),
        ));
    }
    for (host, c) in &cur {
        if named.contains(host) {
            continue;
        }
        let have = Have::of(c.record, c.live.first().copied());
        let (change, detail) = if opts.prune {
            (
                Change::Prune,
                "not in the file: terminate and forget; volumes kept".to_owned(),
            )
        } else {
            (
                Change::Unmanaged,
                "not in the file (--prune terminates it)".to_owned(),
            )
        };
        let held = if opts.prune {
            region_held(have.zone.as_ref(), &failed).or_else(|| several(&c.live))
        } else {
            None
        };
        rows.push(Row {
            host: host.clone(),
            change,
            held,
            then_stop: false,
            detail,
            want: None,
            have,
        });
    }
    for h in &opts.replace {
        match rows.iter().find(|r| &r.host == h) {
            Some(r) if r.change == Change::Replace => {}
            Some(r) => {
                return Err(ReplaceError {
                    host: h.clone(),
                    why: format!(
                        "the plan does not replace it (it would {})",
                        r.change.name()
                    ),
                })
            }
            None => {
                return Err(ReplaceError {
                    host: h.clone(),
                    why: "no such host in the file or the fleet".into(),
                })
            }
        }
    }
    let summary = summarize(&rows);
    Ok(Plan {
        format: FORMAT,
        product: file.product.clone(),
        file: file.path.display().to_string(),
        regions: Vec::new(),
        replace: opts.replace.clone(),
        prune: opts.prune,
        registry_error: survey.registry_error.clone(),
        failed_regions: survey.failed_regions.clone(),
        hosts: rows,
        summary,
    })
}

fn region_held(zone: Option<&Zone>, failed: &BTreeMap<&Region, &str>) -> Option<String> {
    let region = zone?.region();
    failed
        .get(&region)
        .map(|e| format!("region {region} did not answer ({e})"))
}

fn several(live: &[&Instance]) -> Option<String> {
    (live.len() > 1).then(|| {
        let ids: Vec<&str> = live.iter().map(|i| i.id.as_str()).collect();
        format!(
            "several live instances carry its tags ({}); terminate the extra ones first",
            ids.join(", ")
        )
    })
}

fn row_for(
    d: &DesiredHost,
    record: Option<&HostRecord>,
    live: &[&Instance],
    failed: &BTreeMap<&Region, &str>,
    registry_error: Option<&str>,
    may_replace: bool,
) -> Row {
    let inst = live.first().copied();
    let have = Have::of(record, inst);
    let mut row = Row {
        host: d.host.clone(),
        change: Change::Nothing,
        held: None,
        then_stop: false,
        detail: String::new(),
        want: Some(Want {
            profile: d.profile.clone(),
            zone: d.zone.clone(),
            state: d.state,
        }),
        have: have.clone(),
    };
    // A host whose region (now or to be) did not answer cannot be planned.
    let held = region_held(have.zone.as_ref(), failed)
        .or_else(|| region_held(Some(&d.zone), failed).filter(|_| !have.exists()))
        .or_else(|| several(live))
        .or_else(|| {
            registry_error.filter(|_| !have.exists()).map(|e| {
                format!("the registry did not answer ({e}): a new host cannot be told from one whose instance is gone")
            })
        });
    if let Some(why) = held {
        row.held = Some(why);
        row.change = if have.exists() {
            Change::Nothing
        } else {
            Change::Launch
        };
        row.detail = "not planned".into();
        return row;
    }
    if !have.exists() {
        if d.state == DesiredState::Terminated {
            row.detail = "no instance, as the file says".into();
            return row;
        }
        row.change = Change::Launch;
        row.then_stop = d.state == DesiredState::Stopped;
        row.detail = "new host".into();
        return row;
    }
    if d.state == DesiredState::Terminated {
        if inst.is_some() {
            row.change = Change::Terminate;
            row.detail = "state: terminated".into();
        } else if let Some(why) = have
            .unfinished(d.state)
            .filter(|_| registry_error.is_none())
        {
            row.change = Change::Repair;
            row.detail = why;
        }
        if let (Some(z), Some(w)) = (&have.zone, row.want.as_mut()) {
            w.zone = z.clone();
        }
        return row;
    }
    // Profile and zone: a host keeps its zone while it is one of the entry's.
    let mut differs = Vec::new();
    if let Some(p) = have.profile.as_ref().filter(|p| **p != d.profile) {
        differs.push(format!("profile {p} → {}", d.profile));
    }
    match &have.zone {
        Some(z) if d.zones.contains(z) => {
            if let Some(w) = row.want.as_mut() {
                w.zone = z.clone();
            }
        }
        Some(z) => differs.push(format!("zone {z} → {}", d.zone)),
        None => {}
    }
    // A claim that never got an instance (its launch was refused) has nothing to lose:
    // it launches where the file says now, as `start --zone` moves it.
    let profile_same = have.profile.as_ref().is_none_or(|p| *p == d.profile);
    if !differs.is_empty()
        && profile_same
        && have.instance.is_none()
        && have.recorded_instance.is_none()
    {
        row.change = Change::Launch;
        row.then_stop = d.state == DesiredState::Stopped;
        row.detail = format!("{}: its claim never got an instance", differs.join(", "));
        return row;
    }
    if !differs.is_empty() {
        row.change = Change::Replace;
        row.then_stop = d.state == DesiredState::Stopped;
        row.detail = differs.join(", ");
        if !may_replace {
            row.held = Some(format!(
                "a replace loses the instance; `--replace {}` to do it",
                d.host
            ));
        }
        return row;
    }
    let state = inst.map(|i| &i.state);
    (row.change, row.detail) = match (state, d.state) {
        (None, s) => {
            row.then_stop = s == DesiredState::Stopped;
            (Change::Relaunch, "its instance is gone".to_owned())
        }
        (Some(InstanceState::Running | InstanceState::Pending), DesiredState::Stopped) => {
            (Change::Stop, "running → stopped".to_owned())
        }
        (Some(InstanceState::Stopped | InstanceState::Stopping), DesiredState::Running) => {
            (Change::Start, "stopped → running".to_owned())
        }
        (Some(InstanceState::Other(s)), _) => {
            row.held = Some(format!(
                "its instance is in state {s}, which cerveza does not know"
            ));
            (Change::Nothing, String::new())
        }
        _ => match have
            .unfinished(d.state)
            .filter(|_| registry_error.is_none())
        {
            Some(why) => (Change::Repair, why),
            None => (Change::Nothing, String::new()),
        },
    };
    row
}

/// What changed since a saved plan was made, one line per host; empty: nothing.
pub fn stale(saved: &BTreeMap<Hostname, Have>, now: &BTreeMap<Hostname, Have>) -> Vec<String> {
    let mut out = Vec::new();
    let hosts: BTreeSet<&Hostname> = saved.keys().chain(now.keys()).collect();
    let none = Have::default();
    for h in hosts {
        let (a, b) = (saved.get(h).unwrap_or(&none), now.get(h).unwrap_or(&none));
        if a == b {
            continue;
        }
        out.push(format!("{h}: {}", describe_move(a, b)));
    }
    out
}

fn describe_move(a: &Have, b: &Have) -> String {
    let show = |h: &Have| match (&h.instance, &h.state, h.generation) {
        (Some(i), Some(s), _) => format!("{i} {s}"),
        (None, Some(s), Some(g)) => format!("no instance (record generation {g}, {s})"),
        (None, _, Some(g)) => format!("no instance (record generation {g})"),
        _ => "nothing".to_owned(),
    };
    let (sa, sb) = (show(a), show(b));
    if sa != sb {
        return format!("was {sa}, now {sb}");
    }
    let mut what = Vec::new();
    if a.generation != b.generation {
        what.push("its registry generation");
    }
    if a.updated_at != b.updated_at {
        what.push("its registry record");
    }
    if a.profile != b.profile {
        what.push("its profile");
    }
    if a.zone != b.zone {
        what.push("its zone");
    }
    format!("{} changed ({sb})", what.join(" and "))
}

#[cfg(test)]
mod tests;
