//! `cerveza export KIND`: config files that follow from the fleet.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use cerveza_core::selection::Selection;
use cerveza_export::{generate, Fleet, Kind};

use super::Ctx;
use crate::cli::ExportKind;
use crate::exit;
use crate::output;

fn kind(k: ExportKind) -> Kind {
    match k {
        ExportKind::SshConfig => Kind::SshConfig,
        ExportKind::Hosts => Kind::Hosts,
        ExportKind::Ganglia => Kind::Ganglia,
        ExportKind::Nagios => Kind::Nagios,
        ExportKind::Prometheus => Kind::Prometheus,
        ExportKind::Ansible => Kind::Ansible,
    }
}

/// Writes `content` to `path` through a temporary file and a rename, so readers never
/// see half a file.
fn write_atomic(path: &Path, content: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("--out needs a file name")?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.cerveza-{}.tmp", std::process::id()));
    std::fs::write(&tmp, content).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Runs `export`.
pub async fn run(
    ctx: &Ctx,
    k: ExportKind,
    selection: &[String],
    out: Option<&Path>,
    check: bool,
) -> Result<u8> {
    if check && out.is_none() {
        // Checked here rather than by clap, whose usage line would list the global
        // flags set through the environment as if they were required.
        bail!(exit::Coded::new(
            exit::USAGE,
            "--check compares with the files --out names: give --out PATH (e.g. `cerveza export nagios --out /etc/nagios4/conf.d/cerveza.cfg --check`)"
        ));
    }
    let selection = Selection::parse_all(selection)?;
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let instances = ctx
        .whole_fleet(
            &backends,
            &selection,
            "not exporting a partial fleet (the hosts of a missing region would vanish from the config)",
        )
        .await?;
    let fleet = Fleet::new(product, &instances);
    for s in &fleet.skipped {
        eprintln!("{} left out {s}", crate::colour::warning_label());
    }
    if fleet.hosts.is_empty() && !selection.is_all() {
        bail!(exit::Coded::new(
            exit::NOT_FOUND,
            format!("selection {selection} matches no host")
        ));
    }
    let files = generate(kind(k), &fleet, &ctx.config.export)?;
    let Some(out) = out else {
        let many = files.len() > 1;
        for f in &files {
            if many {
                output::emit(&format!("# ==> {} <==\n", f.name));
            }
            output::emit(&f.content);
        }
        return Ok(exit::OK);
    };
    // One file: --out is that file. Several (ganglia): --out is a directory.
    let targets: Vec<(std::path::PathBuf, &str)> = if files.len() == 1 && k != ExportKind::Ganglia {
        vec![(out.to_owned(), files[0].content.as_str())]
    } else {
        files
            .iter()
            .map(|f| (out.join(&f.name), f.content.as_str()))
            .collect()
    };
    let changed: Vec<&Path> = targets
        .iter()
        .filter(|(p, c)| {
            std::fs::read_to_string(p)
                .map(|old| old != *c)
                .unwrap_or(true)
        })
        .map(|(p, _)| p.as_path())
        .collect();
    if check {
        for p in &changed {
            eprintln!("would change: {}", p.display());
        }
        return Ok(if changed.is_empty() {
            exit::OK
        } else {
            exit::FAILURE
        });
    }
    if targets.len() > 1 {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    for (p, c) in &targets {
        if changed.contains(&p.as_path()) {
            write_atomic(p, c)?;
        }
    }
    if !ctx.quiet {
        eprintln!(
            "{} host(s): {} of {} file(s) changed",
            fleet.hosts.len(),
            changed.len(),
            targets.len()
        );
    }
    Ok(exit::OK)
}
