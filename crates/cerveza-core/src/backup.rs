//! Backups of a host's data: one crash-consistent snapshot set per host (EC2's
//! CreateSnapshots on the instance, the data volumes of its volume profiles only, the
//! root excluded), each snapshot carrying its volume's tags (host, device, volume
//! profile, member index) and the set's: its id and how many members it has, so a set
//! is complete when every member is there and completed, wherever it is listed.

use std::collections::BTreeMap;

use crate::names::{Hostname, Region};

/// The set a snapshot belongs to.
pub const SET: &str = "cerveza:backup-set";
/// How many snapshots the set has.
pub const MEMBERS: &str = "cerveza:backup-members";
/// On a copy (`backup --copy-to`): the snapshot it copies, `<region>/<snap-…>`. A copy
/// already made is found by it (CopySnapshot has no idempotency token).
pub const COPIED_FROM: &str = "cerveza:copied-from";
/// On a copy: when the set was taken (seconds since the epoch); a copy's own start
/// time is when it was copied, and a set's age is its data's.
pub const TAKEN: &str = "cerveza:backup-taken";
/// On a set a `move` took of the stopped host: the zone it moves the host to. A rerun
/// of that move (the first one killed) goes on with the set while the host has not run
/// since, instead of taking (and copying) its data again.
pub const MOVE_TO: &str = "cerveza:move-to";

/// A snapshot's state, as EBS reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    /// Still being taken (or copied).
    Pending,
    /// Done: volumes can be made from it.
    Completed,
    /// Failed.
    Error,
}

/// One EBS snapshot of the fleet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    /// `snap-…`.
    pub id: String,
    /// Its region.
    pub region: Region,
    /// The volume it was taken of.
    pub volume_id: Option<String>,
    /// Size in GiB (the volume's).
    pub size_gb: i32,
    /// Its state.
    pub state: SnapshotState,
    /// When it was started, seconds since the epoch.
    pub started: Option<i64>,
    /// All tags.
    pub tags: BTreeMap<String, String>,
}

/// What a set is, from its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SetState {
    /// Every member is there and completed: it can be restored.
    Complete,
    /// Members are still being taken.
    Pending,
    /// A member is missing or failed: it can never be restored.
    Incomplete,
}

/// One host's snapshot set in one region.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackupSet {
    /// The set's id (`<host>-<UTC time>`).
    pub id: String,
    /// The host whose data it holds.
    pub host: String,
    /// Its region.
    pub region: Region,
    /// How many members it should have.
    pub expected: usize,
    /// Its members, by device.
    pub members: Vec<Snapshot>,
    /// Second copies of a member (two operators copying the set at once, or a copy
    /// whose answer was lost and was sent again): not members, deleted with the set.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<Snapshot>,
}

impl BackupSet {
    /// Complete, pending or incomplete.
    pub fn state(&self) -> SetState {
        let failed = self.members.iter().any(|s| s.state == SnapshotState::Error);
        let devices: std::collections::BTreeSet<Option<&String>> = self
            .members
            .iter()
            .map(|s| s.tags.get(crate::tags::DEVICE))
            .collect();
        // Members still being listed (a copy half made) look the same as lost ones;
        // both cannot be restored now. Nor can a set with a device twice or more
        // members than it says (tags set by hand): which member is the data?
        if failed || self.members.len() != self.expected || devices.len() != self.expected {
            return SetState::Incomplete;
        }
        if self
            .members
            .iter()
            .any(|s| s.state == SnapshotState::Pending)
        {
            SetState::Pending
        } else {
            SetState::Complete
        }
    }

    /// The data it holds, GiB.
    pub fn size_gb(&self) -> i64 {
        self.members.iter().map(|s| i64::from(s.size_gb)).sum()
    }

    /// When it was taken (its first member's start; for a copy, its source's).
    pub fn started(&self) -> Option<i64> {
        self.members.iter().filter_map(|s| s.started).min()
    }

    /// Every snapshot of it: members and duplicates (what deleting the set deletes).
    pub fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.members.iter().chain(&self.duplicates)
    }

    /// The tags a copy of `member` (of this set) carries into another region: all of
    /// its own but AWS's (EC2 copies no user tags), which snapshot it copies, and when
    /// the set was taken.
    pub fn copy_tags(&self, member: &Snapshot) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, String> = member
            .tags
            .iter()
            .filter(|(k, _)| !k.starts_with("aws:"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        t.insert(
            COPIED_FROM.to_owned(),
            format!("{}/{}", member.region, member.id),
        );
        if let Some(taken) = self.started() {
            t.insert(TAKEN.to_owned(), taken.to_string());
        }
        t
    }
}

/// The sets `snapshots` form (snapshots without a set tag are not cerveza's backups),
/// by host, then newest first.
pub fn sets(snapshots: Vec<Snapshot>) -> Vec<BackupSet> {
    let mut by: BTreeMap<(Region, String), BackupSet> = BTreeMap::new();
    for mut s in snapshots {
        let Some(id) = s.tags.get(SET).cloned() else {
            continue;
        };
        if let Some(taken) = s.tags.get(TAKEN).and_then(|t| t.parse().ok()) {
            s.started = Some(taken);
        }
        let expected = s
            .tags
            .get(MEMBERS)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let host = s.tags.get(crate::tags::HOST).cloned().unwrap_or_default();
        let set = by
            .entry((s.region.clone(), id.clone()))
            .or_insert_with(|| BackupSet {
                id,
                host,
                region: s.region.clone(),
                expected,
                members: Vec::new(),
                duplicates: Vec::new(),
            });
        set.expected = set.expected.max(expected);
        set.members.push(s);
    }
    let mut out: Vec<BackupSet> = by.into_values().collect();
    for set in &mut out {
        set.members.sort_by(|a, b| {
            let key = |s: &Snapshot| s.tags.get(crate::tags::DEVICE).cloned();
            key(a).cmp(&key(b)).then(a.id.cmp(&b.id))
        });
        // Two copies of one snapshot are one member: the first (by id) stays, the
        // others are duplicates (a completed one is preferred, then a pending one).
        let mut kept: BTreeMap<String, usize> = BTreeMap::new();
        let mut members = Vec::new();
        for m in std::mem::take(&mut set.members) {
            let Some(from) = m.tags.get(COPIED_FROM).cloned() else {
                members.push(m);
                continue;
            };
            match kept.get(&from) {
                None => {
                    kept.insert(from, members.len());
                    members.push(m);
                }
                Some(&i) => {
                    let rank = |s: &Snapshot| match s.state {
                        SnapshotState::Completed => 0,
                        SnapshotState::Pending => 1,
                        SnapshotState::Error => 2,
                    };
                    let better = rank(&m) < rank(&members[i]);
                    if better {
                        set.duplicates.push(std::mem::replace(&mut members[i], m));
                    } else {
                        set.duplicates.push(m);
                    }
                }
            }
        }
        set.members = members;
    }
    out.sort_by(|a, b| {
        a.host
            .cmp(&b.host)
            .then(b.started().cmp(&a.started()))
            .then(a.id.cmp(&b.id))
    });
    out
}

/// What `backup prune` does with a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prune {
    /// Deleted (beyond `--keep`, or older than `--older-than`).
    Delete,
    /// Kept: within what was asked to keep.
    Keep,
    /// Kept whatever was asked: the host's newest complete set.
    KeepLastComplete,
    /// Kept: still being taken (it may become the newest complete set).
    KeepPending,
}

/// What to do with each of `sets` (any hosts, any regions): per host, the newest `keep`
/// sets stay (a set and its copies count once), and with `older_than` (seconds) only sets older than that go. Never the
/// host's newest complete set, wherever it is, and never a set still pending.
pub fn prune(
    sets: &[BackupSet],
    keep: Option<usize>,
    older_than: Option<i64>,
    now: i64,
) -> Vec<Prune> {
    let mut newest_complete: BTreeMap<&str, (Option<i64>, &str)> = BTreeMap::new();
    for s in sets.iter().filter(|s| s.state() == SetState::Complete) {
        let e = newest_complete
            .entry(&s.host)
            .or_insert((s.started(), &s.id));
        if (s.started(), s.id.as_str()) > (e.0, e.1) {
            *e = (s.started(), &s.id);
        }
    }
    // Each host's sets, newest first, to count `keep`.
    let mut order: Vec<usize> = (0..sets.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&sets[a], &sets[b]);
        a.host
            .cmp(&b.host)
            .then((b.started(), &b.id).cmp(&(a.started(), &a.id)))
    });
    let mut out = vec![Prune::Keep; sets.len()];
    // A set and its copies in other regions are one set: counted once.
    let mut seen: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for i in order {
        let s = &sets[i];
        let ids = seen.entry(&s.host).or_default();
        ids.insert(&s.id);
        let rank = &ids.len();
        out[i] = if newest_complete.get(s.host.as_str()).map(|e| e.1) == Some(s.id.as_str()) {
            Prune::KeepLastComplete
        } else if s.state() == SetState::Pending {
            Prune::KeepPending
        } else {
            let beyond = keep.is_some_and(|k| *rank > k);
            let old = older_than.is_some_and(|age| s.started().is_some_and(|t| now - t > age));
            match (keep, older_than) {
                (Some(_), Some(_)) if beyond && old => Prune::Delete,
                (Some(_), None) if beyond => Prune::Delete,
                (None, Some(_)) if old => Prune::Delete,
                _ => Prune::Keep,
            }
        };
    }
    out
}

/// A new set's id: the host, the UTC time to the second (so a host's ids sort by
/// time) and `nonce` (random), so two backups of a host in one second (two operators,
/// a rerun) are two sets, never one set with twice its members.
pub fn set_id(host: &Hostname, now: i64, nonce: u16) -> String {
    let (days, secs) = (now.div_euclid(86_400), now.rem_euclid(86_400));
    let (y, m, d) = civil(days);
    format!(
        "{host}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{nonce:04x}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month, day) of days since the epoch (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(id: &str, set: &str, members: usize, device: &str, state: SnapshotState) -> Snapshot {
        Snapshot {
            id: id.into(),
            region: Region::parse("us-east-1").unwrap(),
            volume_id: None,
            size_gb: 100,
            state,
            started: Some(1_780_000_000),
            tags: [
                (SET.to_owned(), set.to_owned()),
                (MEMBERS.to_owned(), members.to_string()),
                (crate::tags::HOST.to_owned(), "db01".to_owned()),
                (crate::tags::DEVICE.to_owned(), device.to_owned()),
            ]
            .into(),
        }
    }

    #[test]
    fn a_set_is_complete_only_with_every_member_completed() {
        use SnapshotState::*;
        let all = sets(vec![
            snap("snap-2", "a", 2, "/dev/sdg", Completed),
            snap("snap-1", "a", 2, "/dev/sdf", Completed),
            snap("snap-3", "b", 2, "/dev/sdf", Pending),
            snap("snap-4", "b", 2, "/dev/sdg", Completed),
            snap("snap-5", "c", 2, "/dev/sdf", Completed),
            snap("snap-6", "d", 1, "/dev/sdf", Error),
            // One device twice, and more members than the set says.
            snap("snap-7", "e", 2, "/dev/sdf", Completed),
            snap("snap-8", "e", 2, "/dev/sdf", Completed),
            snap("snap-9", "f", 1, "/dev/sdf", Completed),
            snap("snap-10", "f", 1, "/dev/sdg", Completed),
        ]);
        let state: Vec<(&str, SetState)> = all.iter().map(|s| (s.id.as_str(), s.state())).collect();
        assert_eq!(
            state,
            [
                ("a", SetState::Complete),
                ("b", SetState::Pending),
                ("c", SetState::Incomplete),
                ("d", SetState::Incomplete),
                ("e", SetState::Incomplete),
                ("f", SetState::Incomplete)
            ]
        );
        assert_eq!(all[0].members[0].id, "snap-1", "members by device");
        assert_eq!(all[0].size_gb(), 200);
    }

    #[test]
    fn two_copies_of_one_member_are_one_member_and_a_duplicate() {
        use SnapshotState::*;
        let west = Region::parse("us-west-1").unwrap();
        let source = sets(vec![
            snap("snap-1", "a", 2, "/dev/sdf", Completed),
            snap("snap-2", "a", 2, "/dev/sdg", Completed),
        ])
        .remove(0);
        let copy = |id: &str, of: &Snapshot, state| Snapshot {
            id: id.into(),
            region: west.clone(),
            state,
            started: Some(1_790_000_000),
            tags: source.copy_tags(of),
            ..of.clone()
        };
        let all = sets(vec![
            copy("snap-c1", &source.members[0], Pending),
            copy("snap-c2", &source.members[0], Completed),
            copy("snap-c3", &source.members[1], Completed),
        ]);
        assert_eq!(all.len(), 1);
        let s = &all[0];
        assert_eq!((s.region.as_str(), s.id.as_str()), ("us-west-1", "a"));
        assert_eq!(s.state(), SetState::Complete, "{s:#?}");
        let ids: Vec<&str> = s.members.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            ["snap-c2", "snap-c3"],
            "the completed copy is the member"
        );
        assert_eq!(s.duplicates[0].id, "snap-c1");
        assert_eq!(
            s.snapshots().count(),
            3,
            "deleting the set deletes all three"
        );
        assert_eq!(
            s.started(),
            source.started(),
            "a copy's set is as old as its data"
        );
        assert_eq!(s.members[0].tags[COPIED_FROM], "us-east-1/snap-1");
    }

    #[test]
    fn prune_never_takes_the_newest_complete_set_or_a_pending_one() {
        use SnapshotState::*;
        let mut all = Vec::new();
        // Four sets of db01, newest last: complete, complete, incomplete, pending.
        for (n, (id, state, members)) in [
            ("a", Completed, 1),
            ("b", Completed, 1),
            ("c", Completed, 2),
            ("d", Pending, 1),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = snap(&format!("snap-{id}"), id, members, "/dev/sdf", state);
            s.started = Some(1_000 + 100 * n as i64);
            all.push(s);
        }
        let sets = sets(all);
        let ids: Vec<&str> = sets.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["d", "c", "b", "a"], "newest first");
        use Prune::*;
        assert_eq!(
            prune(&sets, Some(1), None, 2_000),
            [KeepPending, Delete, KeepLastComplete, Delete],
            "keep 1: the pending set counts, the newest complete one stays"
        );
        assert_eq!(
            prune(&sets, Some(0), None, 2_000),
            [KeepPending, Delete, KeepLastComplete, Delete]
        );
        assert_eq!(
            prune(&sets, None, Some(250), 1_300),
            [KeepPending, Keep, KeepLastComplete, Delete],
            "older than 250 s at 1300: only a (1000)"
        );
        assert_eq!(
            prune(&sets, Some(3), None, 2_000),
            [KeepPending, Keep, KeepLastComplete, Delete]
        );
    }

    #[test]
    fn prune_counts_a_set_and_its_copy_once() {
        use SnapshotState::*;
        let mut all = Vec::new();
        for (n, id) in ["a", "b", "c"].into_iter().enumerate() {
            let mut s = snap(&format!("snap-{id}"), id, 1, "/dev/sdf", Completed);
            s.started = Some(1_000 + 100 * n as i64);
            let source = sets(vec![s.clone()]).remove(0);
            let mut copy = s.clone();
            copy.id = format!("snap-{id}-west");
            copy.region = Region::parse("us-west-1").unwrap();
            copy.started = Some(5_000);
            copy.tags = source.copy_tags(&s);
            all.extend([s, copy]);
        }
        let sets = sets(all);
        let got: Vec<(&str, &str, Prune)> = sets
            .iter()
            .zip(prune(&sets, Some(2), None, 9_000))
            .map(|(s, p)| (s.id.as_str(), s.region.as_str(), p))
            .collect();
        use Prune::*;
        assert_eq!(
            got,
            [
                ("c", "us-east-1", KeepLastComplete),
                ("c", "us-west-1", KeepLastComplete),
                ("b", "us-east-1", Keep),
                ("b", "us-west-1", Keep),
                ("a", "us-east-1", Delete),
                ("a", "us-west-1", Delete),
            ]
        );
    }

    #[test]
    fn set_ids_name_the_host_and_the_utc_time() {
        let h = Hostname::parse("db01").unwrap();
        assert_eq!(
            set_id(&h, 1_751_241_600 + 3_723, 0xbeef),
            "db01-20250630T010203Z-beef"
        );
    }
}
