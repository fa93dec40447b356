//! How `doctor` reports: one table of checks, then each failing check with the paper's
//! reason, what was found and how to fix it; `-o json` gives all of it.

use anyhow::Result;
use cerveza_core::names::Region;
use cerveza_core::selection::fold_hostnames;
use cerveza_doctor::{Finding, Scope};
use serde::Serialize;

use super::{CheckReport, Outcome};
use crate::cli::Output;
use crate::commands::Ctx;
use crate::output::{self, clean, Table};

/// The subjects of findings, short: hosts folded (`web[01-03]`), others listed.
fn subjects(findings: &[Finding], scope: Scope) -> String {
    let mut names: Vec<&str> = findings.iter().map(|f| f.subject.as_str()).collect();
    names.dedup();
    if names.is_empty() {
        return "-".into();
    }
    if scope == Scope::Host {
        return fold_hostnames(&names);
    }
    match names.as_slice() {
        [one] => (*one).to_owned(),
        [first, rest @ ..] => format!("{first} and {} more", rest.len()),
        [] => "-".into(),
    }
}

/// The table of checks, then each failing check: its reason, findings and fix.
fn render(reports: &[CheckReport]) -> String {
    let mut t = Table::new(&["CHECK", "RESULT", "CHECKED", "FOUND", "ON"]);
    for r in reports {
        let result = match r.result {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Incomplete => "incomplete",
            Outcome::Skipped => "skipped",
        };
        let (found, on) = match r.result {
            Outcome::Fail => (r.findings.len().to_string(), subjects(&r.findings, r.scope)),
            Outcome::Incomplete => (
                "-".into(),
                format!("{} not checked", subjects(&r.not_checked, r.scope)),
            ),
            Outcome::Pass | Outcome::Skipped => ("-".into(), "-".into()),
        };
        t.row(vec![
            r.id.to_owned(),
            result.to_owned(),
            r.checked.to_string(),
            found,
            clean(&on),
        ]);
    }
    let mut text = t.render();
    for r in reports.iter().filter(|r| r.result == Outcome::Fail) {
        text.push_str(&format!("\n{}: {}\n", r.id, r.reason));
        for f in &r.findings {
            text.push_str(&format!("  {}: {}\n", clean(&f.subject), clean(&f.problem)));
        }
        text.push_str(&format!("  fix: {}\n", r.fix));
    }
    text
}

#[derive(Serialize)]
struct Json<'a> {
    checks: &'a [CheckReport],
    regions_left_out: Vec<&'a str>,
}

/// Prints the report.
pub(super) fn print(
    ctx: &Ctx,
    reports: &[CheckReport],
    left_out: &[(Region, String)],
) -> Result<()> {
    if ctx.output == Output::Json {
        return output::print_json(&Json {
            checks: reports,
            regions_left_out: left_out.iter().map(|(r, _)| r.as_str()).collect(),
        });
    }
    output::emit(&render(reports));
    // What could not be checked, once per subject and reason, on stderr.
    let mut missed: Vec<(&str, &str)> = reports
        .iter()
        .flat_map(|r| r.not_checked.iter())
        .map(|f| (f.subject.as_str(), f.problem.as_str()))
        .collect();
    missed.sort();
    missed.dedup();
    for (subject, why) in missed {
        eprintln!("not checked: {}: {}", clean(subject), clean(why));
    }
    if !ctx.quiet {
        let count = |o: Outcome| reports.iter().filter(|r| r.result == o).count();
        eprintln!(
            "{} check(s): {} failed, {} passed, {} incomplete, {} skipped",
            reports.len(),
            count(Outcome::Fail),
            count(Outcome::Pass),
            count(Outcome::Incomplete),
            count(Outcome::Skipped)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cerveza_doctor::Check;

    use super::super::checked;
    use super::*;

    #[test]
    fn the_report_table_and_its_details() {
        let reports = [
            CheckReport::new(
                Check::SecurityGroups,
                checked(12, "rule(s)"),
                vec![
                    Finding::new("sg-1 (mysql, us-east-1)", "ingress tcp 3306 from 10.0.1.5/32: web01's private address"),
                    Finding::new("sg-2 (web, us-east-1)", "ingress tcp 80 from 10.0.1.6/32: a private address no host of the fleet has now"),
                ],
                Vec::new(),
            ),
            CheckReport::new(Check::Registry, checked(1, "table(s)"), Vec::new(), Vec::new()),
            CheckReport::new(
                Check::Resolver,
                checked(3, "host(s)"),
                vec![
                    Finding::new("web01", "/etc/resolv.conf names one nameserver (10.0.0.2)"),
                    Finding::new("web02", "/etc/resolv.conf names one nameserver (10.0.0.2)"),
                ],
                vec![Finding::new("web04", "unreachable")],
            ),
            CheckReport::new(
                Check::Nsswitch,
                checked(3, "host(s)"),
                Vec::new(),
                vec![Finding::new("web04", "unreachable")],
            ),
            CheckReport::skipped(Check::Fstab),
        ];
        insta::assert_snapshot!(render(&reports));
    }
}
