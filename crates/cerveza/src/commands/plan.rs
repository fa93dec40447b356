//! `cerveza plan` and `cerveza apply`: the fleet as a file, reviewed before it changes.

use std::collections::BTreeMap;
use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use cerveza_core::converge::{self, plan, Change, FleetFile, Plan, Row};
use cerveza_core::profile::{ProfileError, ProfileSet};
use cerveza_core::Hostname;

use super::{report, Backends, Ctx};
use crate::cli::{Output, WaitArgs};
use crate::exit;
use crate::output::{self, clean, Table};

/// Largest saved plan read.
const MAX_PLAN_BYTES: u64 = 64 * 1024 * 1024;

/// What `plan` and `apply` were asked.
#[derive(Debug, Clone, Default)]
pub struct PlanArgs {
    /// The fleet file.
    pub file: Option<PathBuf>,
    /// A saved plan (`apply --plan`).
    pub saved: Option<PathBuf>,
    /// Hosts that may be replaced.
    pub replace: Vec<String>,
    /// Prune hosts the file does not name.
    pub prune: bool,
    /// Do not ask.
    pub yes: bool,
}

/// Every problem of a fleet file at once.
#[derive(Debug)]
pub struct FleetInvalid(pub PathBuf, pub Vec<ProfileError>);

impl std::fmt::Display for FleetInvalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "the fleet file {} has {} problem(s):",
            self.0.display(),
            self.1.len()
        )?;
        for e in &self.1 {
            writeln!(f, "  {e}")?;
        }
        write!(f, "nothing was read from the cloud and nothing was changed")
    }
}

impl std::error::Error for FleetInvalid {}

/// Loads and validates a fleet file against the profiles and the configuration.
fn load_file(ctx: &Ctx, profiles: &ProfileSet, path: &Path) -> Result<FleetFile> {
    let product = ctx.config.product().ok();
    FleetFile::load(path, profiles, &ctx.config.regions, product).map_err(|errs| {
        exit::Coded::new(exit::USAGE, FleetInvalid(path.to_owned(), errs).to_string()).into()
    })
}

/// Reads the fleet and makes the plan of `file`, with every check that needs the cloud.
async fn make(
    ctx: &Ctx,
    backends: &Backends,
    profiles: &ProfileSet,
    file: &FleetFile,
    args: &PlanArgs,
) -> Result<Plan> {
    let replace: Vec<Hostname> = args
        .replace
        .iter()
        .map(|h| Hostname::parse(h))
        .collect::<Result<_, _>>()?;
    let opts = plan::Options {
        replace,
        prune: args.prune,
    };
    let (plan, misplaced) = converge::plan(
        &backends.ec2,
        &backends.registry,
        file,
        &ctx.config.regions,
        &opts,
        &converge::Launching {
            profiles,
            vpcs: &ctx.config.vpcs,
        },
        ctx.config.region_timeout,
    )
    .await
    .map_err(|e| exit::Coded::new(exit::USAGE, e.to_string()))?;
    warn_unread(&plan.failed_regions, plan.registry_error.as_deref());
    if !misplaced.is_empty() {
        let at: BTreeMap<&Hostname, String> = file
            .hosts
            .iter()
            .map(|d| (&d.host, d.zone_at.to_string()))
            .collect();
        let lines: Vec<String> = misplaced
            .iter()
            .map(|(h, why)| {
                format!(
                    "  {}: {h}: {why}",
                    at.get(h).map(String::as_str).unwrap_or("?")
                )
            })
            .collect();
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!(
                "the fleet file puts {} host(s) where they cannot go:\n{}\nnothing was changed",
                misplaced.len(),
                lines.join("\n")
            )
        ));
    }
    Ok(plan)
}

fn warn_unread(failed_regions: &[(cerveza_core::Region, String)], registry_error: Option<&str>) {
    for (region, e) in failed_regions {
        eprintln!(
            "{} region {region} did not answer ({e}); its hosts are held",
            crate::colour::warning_label()
        );
    }
    if let Some(e) = registry_error {
        eprintln!(
            "{} the registry did not answer ({e}); planning from the instances' tags",
            crate::colour::warning_label()
        );
    }
}

/// Runs `plan`: exit 0 when the fleet is as the file says, 2 when it differs.
pub async fn run_plan(ctx: &Ctx, args: &PlanArgs) -> Result<u8> {
    let path = args.file.as_deref().context("a fleet file is needed")?;
    let profiles = ctx.profiles()?;
    let file = load_file(ctx, &profiles, path)?;
    let backends = ctx.backends().await;
    let plan = make(ctx, &backends, &profiles, &file, args).await?;
    show(ctx, &plan)?;
    requests(ctx);
    Ok(if differs(&plan) { 2 } else { exit::OK })
}

/// Whether the fleet differs from the file in any way (held changes and unmanaged
/// hosts included).
fn differs(plan: &Plan) -> bool {
    plan.hosts
        .iter()
        .any(|r| r.change != Change::Nothing || r.held.is_some())
}

fn requests(ctx: &Ctx) {
    let c = cerveza_aws::stats().counts();
    if !ctx.quiet && c.requests > 0 {
        eprintln!("read the fleet in {} AWS requests", c.requests);
    }
}

/// Prints a plan: the JSON plan, or the rows that are not "nothing" and a summary line.
fn show(ctx: &Ctx, plan: &Plan) -> Result<()> {
    if ctx.output == Output::Json {
        return output::print_json(plan);
    }
    let rows: Vec<&Row> = plan
        .hosts
        .iter()
        .filter(|r| r.change != Change::Nothing || r.held.is_some())
        .collect();
    if !rows.is_empty() {
        output::emit(&table(&rows).render());
    }
    println!("{}", summary(plan));
    Ok(())
}

/// The table of a plan's rows.
fn table(rows: &[&Row]) -> Table {
    let mut t = Table::new(&["HOST", "CHANGE", "PROFILE", "ZONE", "NOW", "DETAIL"]);
    for r in rows {
        let change = match &r.held {
            Some(_) => format!("{} (held)", r.change.name()),
            None if r.then_stop => format!("{}, stop", r.change.name()),
            None => r.change.name().to_owned(),
        };
        let now = match (&r.have.instance, &r.have.state) {
            (Some(i), Some(s)) => format!("{i} {s}"),
            (None, _) if r.have.generation.is_some() => "no instance".into(),
            _ => "-".into(),
        };
        let (profile, zone) = match &r.want {
            Some(w) => (w.profile.to_string(), w.zone.to_string()),
            None => (
                crate::output::or_dash(r.have.profile.as_ref().map(|p| p.as_str())),
                crate::output::or_dash(r.have.zone.as_ref().map(|z| z.as_str())),
            ),
        };
        let mut detail = clean(&r.detail);
        if let Some(h) = &r.held {
            detail = if detail.is_empty() {
                clean(h)
            } else {
                format!("{detail}; {}", clean(h))
            };
        }
        t.row(vec![r.host.to_string(), change, profile, zone, now, detail]);
    }
    t
}

/// `Plan: 1 to launch, 2 to stop, 1 replace held, 1 unmanaged; 490 unchanged.`
fn summary(plan: &Plan) -> String {
    let mut counts: BTreeMap<Change, (usize, usize)> = BTreeMap::new();
    for r in &plan.hosts {
        let c = counts.entry(r.change).or_default();
        if r.held.is_some() {
            c.1 += 1;
        } else {
            c.0 += 1;
        }
    }
    let mut parts = Vec::new();
    for change in Change::ALL {
        let Some((go, held)) = counts.get(&change).copied() else {
            continue;
        };
        match change {
            Change::Nothing => {}
            Change::Unmanaged => parts.push(format!("{go} unmanaged")),
            _ if go > 0 => parts.push(format!("{go} to {}", change.name())),
            _ => {}
        }
        if held > 0 && change != Change::Nothing {
            parts.push(format!("{held} {} held", change.name()));
        }
    }
    let unchanged = counts.get(&Change::Nothing).map(|(go, _)| *go).unwrap_or(0);
    let held_nothing = counts.get(&Change::Nothing).map(|c| c.1).unwrap_or(0);
    if held_nothing > 0 {
        parts.push(format!("{held_nothing} not planned"));
    }
    if parts.is_empty() {
        format!(
            "No changes: {unchanged} host(s) of product {} are as the file says.",
            plan.product
        )
    } else {
        format!("Plan: {}; {unchanged} unchanged.", parts.join(", "))
    }
}

/// Reads a saved plan.
fn read_saved(ctx: &Ctx, path: &Path) -> Result<Plan> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading the plan {}", path.display()))?
        .len();
    if len > MAX_PLAN_BYTES {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!(
                "{}: {len} bytes is larger than a plan may be",
                path.display()
            )
        ));
    }
    let text =
        std::fs::read(path).with_context(|| format!("reading the plan {}", path.display()))?;
    let plan: Plan = serde_json::from_slice(&text).map_err(|e| {
        exit::Coded::new(
            exit::USAGE,
            format!(
                "{}:{}:{}: not a plan written by `cerveza plan -o json`: {e}",
                path.display(),
                e.line(),
                e.column()
            ),
        )
    })?;
    if plan.format != plan::FORMAT {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!(
                "{}: plan format {} is not {} (this cerveza's); run `cerveza plan` again",
                path.display(),
                plan.format,
                plan::FORMAT
            )
        ));
    }
    if let Ok(p) = ctx.config.product() {
        if *p != plan.product {
            anyhow::bail!(exit::Coded::new(
                exit::USAGE,
                format!(
                    "{}: the plan is for product {}, cerveza is set to product {p}",
                    path.display(),
                    plan.product
                )
            ));
        }
    }
    Ok(plan)
}

/// Refuses a plan when any host it covers changed since it was made.
async fn check_fresh(ctx: &Ctx, backends: &Backends, plan: &Plan, what: &str) -> Result<()> {
    let survey = converge::survey(
        &backends.ec2,
        &backends.registry,
        &plan.product,
        &plan.regions,
        ctx.config.region_timeout,
    )
    .await;
    warn_unread(&survey.failed_regions, survey.registry_error.as_deref());
    let file_hosts: Vec<Hostname> = plan
        .hosts
        .iter()
        .filter(|r| r.want.is_some())
        .map(|r| r.host.clone())
        .collect();
    let now = plan::seen(&file_hosts, &survey);
    let saved: BTreeMap<Hostname, plan::Have> = plan
        .hosts
        .iter()
        .map(|r| (r.host.clone(), r.have.clone()))
        .collect();
    let moved = plan::stale(&saved, &now);
    if moved.is_empty() {
        return Ok(());
    }
    let mut msg = format!(
        "{what} is stale: {} host(s) changed since it was made:",
        moved.len()
    );
    for m in moved.iter().take(50) {
        msg += &format!("\n  {}", clean(m));
    }
    if moved.len() > 50 {
        msg += &format!("\n  … and {} more", moved.len() - 50);
    }
    msg += "\nnothing was done; run `cerveza plan` again and review it";
    anyhow::bail!(exit::Coded::new(exit::CONFLICT, msg))
}

/// Runs `apply`: with a fleet file, plans, shows and asks (or `--yes`); with a saved
/// plan, checks it is still what the fleet is and carries it out.
pub async fn run_apply(ctx: &Ctx, args: &PlanArgs, wait: &WaitArgs) -> Result<u8> {
    let profiles = ctx.profiles()?;
    let backends = ctx.backends().await;
    let plan = match &args.saved {
        Some(path) => {
            let plan = read_saved(ctx, path)?;
            check_fresh(
                ctx,
                &backends,
                &plan,
                &format!("the plan {}", path.display()),
            )
            .await?;
            plan
        }
        None => {
            let path = args
                .file
                .as_deref()
                .context("a fleet file or --plan is needed")?;
            let file = load_file(ctx, &profiles, path)?;
            let plan = make(ctx, &backends, &profiles, &file, args).await?;
            if ctx.output != Output::Json {
                show(ctx, &plan)?;
            }
            if plan.hosts.iter().any(Row::acts) && !args.yes {
                confirm(&plan)?;
                check_fresh(ctx, &backends, &plan, "the plan shown").await?;
            }
            plan
        }
    };
    for r in plan.hosts.iter().filter(|r| r.held.is_some()) {
        eprintln!(
            "{} {}: {} held: {}",
            crate::colour::warning_label(),
            r.host,
            r.change.name(),
            clean(r.held.as_deref().unwrap_or(""))
        );
    }
    if !plan.hosts.iter().any(Row::acts) {
        if ctx.output == Output::Json {
            output::print_json(&Vec::<()>::new())?;
        } else {
            println!("Nothing to do.");
        }
        return Ok(exit::OK);
    }
    let settings = ctx.settings_for(&plan.product, wait)?;
    let wiring = ctx.wiring(backends, settings, true).await?;
    let mut results = converge::apply(&wiring.lifecycle(), &profiles, &plan).await;
    wiring.done().await;
    // Hosts whose data moves with them, one after the other, as `cerveza move` does:
    // each is stopped, backed up, restored in its new zone and started there.
    for r in plan
        .hosts
        .iter()
        .filter(|r| r.acts() && r.change == Change::Move)
    {
        let Some(want) = &r.want else { continue };
        if !ctx.quiet {
            eprintln!("{}: moving it to {} with its data", r.host, want.zone);
        }
        match super::restore::moved(ctx, &r.host, &want.zone, wait).await {
            Ok(Ok(started)) => results.extend(started),
            Ok(Err(refused)) => results.extend(refused.into_iter().map(|(h, e)| (h, Err(e)))),
            Err(e) => {
                results.push((
                    r.host.clone(),
                    Err(cerveza_core::Error::Refused {
                        host: r.host.to_string(),
                        message: format!("moving it to {}: {e:#}", want.zone),
                    }),
                ));
            }
        }
    }
    report(ctx, &results)
}

/// Asks on the terminal; refuses without one.
fn confirm(plan: &Plan) -> Result<()> {
    let n = plan.hosts.iter().filter(|r| r.acts()).count();
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        anyhow::bail!(exit::Coded::new(
            exit::USAGE,
            format!("apply would change {n} host(s); not on a terminal, so nothing was asked and nothing done: add --yes, or save the plan (`cerveza plan FILE -o json > plan.json`) and `cerveza apply --plan plan.json`")
        ));
    }
    eprint!(
        "Apply these changes to {n} host(s) of product {}? Only 'yes' goes on: ",
        plan.product
    );
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        anyhow::bail!(exit::Coded::new(
            exit::FAILURE,
            "apply cancelled; nothing was done"
        ));
    }
    Ok(())
}

/// Runs `fleet export`: the fleet as a fleet file, on stdout.
pub async fn run_export(ctx: &Ctx) -> Result<u8> {
    let product = ctx.config.product()?.clone();
    let backends = ctx.backends().await;
    let survey = converge::survey(
        &backends.ec2,
        &backends.registry,
        &product,
        &ctx.config.regions,
        ctx.config.region_timeout,
    )
    .await;
    let mut unread: Vec<String> = survey
        .failed_regions
        .iter()
        .map(|(r, e)| format!("region {r}: {e}"))
        .collect();
    if let Some(e) = &survey.registry_error {
        unread.push(format!("the registry: {e}"));
    }
    if !unread.is_empty() {
        anyhow::bail!(exit::Coded::new(
            exit::PARTIAL,
            format!(
                "cannot export a fleet that cannot be read whole (a partial file would plan to prune the rest):\n  {}",
                unread.join("\n  ")
            )
        ));
    }
    let out = converge::export::export(&product, &survey);
    print!("{}", out.text);
    for (h, why) in &out.left_out {
        eprintln!("{} {h} left out: {why}", crate::colour::warning_label());
    }
    if !ctx.quiet {
        eprintln!("{} host(s) exported", out.hosts);
    }
    Ok(if out.left_out.is_empty() {
        exit::OK
    } else {
        exit::PARTIAL
    })
}

/// Runs `fleet schema`: the JSON Schema of fleet files or of profiles.
pub fn run_schema(kind: crate::cli::SchemaKind) -> Result<u8> {
    let schema = match kind {
        crate::cli::SchemaKind::Fleet => converge::file::schema(),
        crate::cli::SchemaKind::Profiles => cerveza_core::profile::schema(),
    };
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(exit::OK)
}

#[cfg(test)]
mod tests;
