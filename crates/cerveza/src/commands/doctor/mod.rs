//! `cerveza doctor [SELECTION]`: the paper's outage lessons, checked on the live fleet.
//!
//! The judgement lives in `cerveza-doctor`; this module reads the facts (the cloud side
//! in [`cloud`], each host's files through ssh in [`hosts`]) and reports (in
//! [`report`]). Nothing is changed anywhere: every call is a read, and the on-host script
//! only prints files.

mod cloud;
mod hosts;
mod report;

use std::time::Duration;

use anyhow::Result;
use cerveza_core::selection::Selection;
use cerveza_doctor::{Check, Finding, Scope};
use serde::Serialize;

use super::Ctx;
use crate::exit;

/// Options of `doctor`.
pub struct DoctorArgs {
    /// Which hosts the on-host checks visit.
    pub selection: Vec<String>,
    /// Only these check ids.
    pub only: Vec<String>,
    /// Unattached volumes older than this count as orphans.
    pub volume_age: Duration,
    /// Reach hosts at their public addresses.
    pub public: bool,
    /// Hosts at once.
    pub fanout: Option<usize>,
    /// Each host's limit, connecting included.
    pub timeout: Duration,
}

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Outcome {
    /// Nothing found, everything checked.
    Pass,
    /// Something found.
    Fail,
    /// Nothing found, but some subjects could not be checked.
    Incomplete,
    /// Nothing to check (no running host).
    Skipped,
}

/// How many things a check looked at, and what they are (`4 host(s)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct Checked {
    /// How many.
    pub count: usize,
    /// What (`host(s)`, `rule(s)`, `record(s)`).
    pub of: &'static str,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.count, self.of)
    }
}

/// `count` things of kind `of`.
pub(crate) fn checked(count: usize, of: &'static str) -> Checked {
    Checked { count, of }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckReport {
    #[serde(skip)]
    check: Check,
    id: &'static str,
    scope: Scope,
    result: Outcome,
    reason: &'static str,
    fix: &'static str,
    /// What was looked at.
    checked: Checked,
    findings: Vec<Finding>,
    not_checked: Vec<Finding>,
}

impl CheckReport {
    /// A check with nothing to look at.
    pub(crate) fn skipped(check: Check) -> Self {
        let mut r = Self::new(check, checked(0, "host(s)"), Vec::new(), Vec::new());
        r.result = Outcome::Skipped;
        r
    }

    pub(crate) fn new(
        check: Check,
        checked: Checked,
        findings: Vec<Finding>,
        not_checked: Vec<Finding>,
    ) -> Self {
        let result = if !findings.is_empty() {
            Outcome::Fail
        } else if not_checked.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Incomplete
        };
        Self {
            check,
            id: check.id(),
            scope: check.scope(),
            result,
            reason: check.reason(),
            fix: check.fix(),
            checked,
            findings,
            not_checked,
        }
    }
}

/// The exit code: 1 when a check failed (even if some hosts could not be checked), 5
/// when every check that ran passed but something could not be checked, else 0.
pub(crate) fn exit_code(reports: &[CheckReport], left_out: bool) -> u8 {
    if reports.iter().any(|r| r.result == Outcome::Fail) {
        exit::FAILURE
    } else if left_out || reports.iter().any(|r| r.result == Outcome::Incomplete) {
        exit::PARTIAL
    } else {
        exit::OK
    }
}

/// Runs `doctor`.
pub async fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<u8> {
    let wanted = if args.only.is_empty() {
        Check::ALL.to_vec()
    } else {
        cerveza_doctor::parse_ids(&args.only).map_err(|e| exit::Coded::new(exit::USAGE, e))?
    };
    let sel = Selection::parse_all(&args.selection)?;
    let backends = ctx.backends().await;
    let listing = ctx.live_fleet(&backends).await?;
    let cloud_wanted: Vec<Check> = wanted
        .iter()
        .copied()
        .filter(|c| c.scope() == Scope::Cloud)
        .collect();
    let host_wanted: Vec<Check> = wanted
        .iter()
        .copied()
        .filter(|c| c.scope() == Scope::Host)
        .collect();
    let (mut reports, host_reports) = futures::join!(
        cloud::checks(ctx, &backends, &listing, &cloud_wanted, args.volume_age),
        hosts::checks(ctx, &backends, &listing, &sel, &host_wanted, args),
    );
    reports.extend(host_reports?);
    reports.sort_by_key(|r| r.check);
    report::print(ctx, &reports, &listing.failed_regions)?;
    Ok(exit_code(&reports, !listing.failed_regions.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_wins_over_what_could_not_be_checked() {
        let pass = CheckReport::new(
            Check::Resolver,
            checked(1, "host(s)"),
            Vec::new(),
            Vec::new(),
        );
        let fail = CheckReport::new(
            Check::Fstab,
            checked(1, "host(s)"),
            vec![Finding::new("web01", "x")],
            Vec::new(),
        );
        let partial = CheckReport::new(
            Check::Nsswitch,
            checked(1, "host(s)"),
            Vec::new(),
            vec![Finding::new("web02", "unreachable")],
        );
        assert_eq!(exit_code(std::slice::from_ref(&pass), false), exit::OK);
        assert_eq!(exit_code(std::slice::from_ref(&pass), true), exit::PARTIAL);
        assert_eq!(
            exit_code(&[pass.clone(), partial.clone()], false),
            exit::PARTIAL
        );
        assert_eq!(exit_code(&[fail, partial], true), exit::FAILURE);
    }
}
