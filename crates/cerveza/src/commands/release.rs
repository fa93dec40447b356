//! `cerveza release push | list | deploy`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use cerveza_aws::{sha256_file, ReleaseFile};
use cerveza_core::model::Instance;
use cerveza_core::selection::Selection;
use cerveza_core::Region;
use futures::stream::{self, StreamExt};

use super::remote::{finish, print_gathered, reach, running_hosts, ssh_options};
use super::Ctx;
use crate::cli::{Output, ReleaseCommand};
use crate::exit;
use crate::output::{self, Table};

/// Names and file names that go into S3 keys and shell commands: a safe alphabet only.
fn check_word(what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        bail!(exit::Coded::new(
            exit::USAGE,
            format!("{what} {s:?}: use letters, digits, '.', '_' and '-' (not first)")
        ));
    }
    Ok(())
}

/// Quotes for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs `release …`.
pub async fn run(ctx: &Ctx, command: &ReleaseCommand) -> Result<u8> {
    let product = ctx.config.product()?;
    let backends = ctx.backends().await;
    let releases = ctx.releases(&backends);
    let releases = &releases;
    let regions = &ctx.config.regions;
    match command {
        ReleaseCommand::Push { path, name } => {
            check_word("release name", name)?;
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_word("file name", &file)?;
            let sha = sha256_file(path).with_context(|| format!("reading {}", path.display()))?;
            let sha = &sha;
            let mut results: Vec<(Region, Result<ReleaseFile, _>)> =
                stream::iter(regions.iter().cloned())
                    .map(|r| async move {
                        let out = releases.push(product, &r, name, path, sha).await;
                        (r, out)
                    })
                    .buffer_unordered(regions.len().clamp(1, 8))
                    .collect()
                    .await;
            // In the configured order, not the order the uploads finished.
            results.sort_by_key(|(r, _)| regions.iter().position(|x| x == r));
            // Results on stdout (one line per region, or JSON); errors on stderr.
            let mut failed = 0;
            let mut lines = String::new();
            let mut json = Vec::new();
            for (region, r) in &results {
                match r {
                    Ok(f) => {
                        lines.push_str(&format!(
                            "{region}: {}/{} ({} bytes, sha256 {})\n",
                            f.name,
                            f.file,
                            f.size,
                            &f.sha256[..12]
                        ));
                        json.push(serde_json::json!({
                            "region": region, "name": f.name, "file": f.file,
                            "size": f.size, "sha256": f.sha256, "error": null,
                        }));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("{} {region}: {e}", crate::colour::error_label());
                        json.push(serde_json::json!({
                            "region": region, "name": name, "file": file,
                            "size": null, "sha256": null, "error": e.to_string(),
                        }));
                    }
                }
            }
            if ctx.output == Output::Json {
                output::print_json(&json)?;
            } else {
                output::emit(&lines);
            }
            Ok(match failed {
                0 => exit::OK,
                n if n == results.len() => exit::FAILURE,
                _ => exit::PARTIAL,
            })
        }
        ReleaseCommand::List => {
            let mut all: Vec<ReleaseFile> = Vec::new();
            for r in regions {
                all.extend(releases.list(product, r).await?);
            }
            // One row per file, with the regions that have it.
            let mut rows: BTreeMap<(String, String, String), (i64, Vec<String>)> = BTreeMap::new();
            for f in &all {
                rows.entry((f.name.clone(), f.file.clone(), f.sha256.clone()))
                    .or_insert((f.size, Vec::new()))
                    .1
                    .push(f.region.to_string());
            }
            if ctx.output == Output::Json {
                output::print_json(&all)?;
            } else {
                let mut t = Table::new(&["NAME", "FILE", "SIZE", "SHA256", "REGIONS"]);
                for ((name, file, sha), (size, rs)) in rows {
                    t.row(vec![
                        name,
                        file,
                        size.to_string(),
                        sha.chars().take(16).collect(),
                        rs.join(","),
                    ]);
                }
                output::emit(&t.render());
            }
            Ok(exit::OK)
        }
        ReleaseCommand::Deploy {
            name,
            selection,
            dest,
            run,
            fanout,
        } => {
            check_word("release name", name)?;
            let dest = dest
                .clone()
                .unwrap_or_else(|| format!("/opt/releases/{name}"));
            let sel = Selection::parse_all(selection)?;
            let chosen = running_hosts(ctx, &backends, &sel).await?;
            let mut by_region: BTreeMap<Region, Vec<&Instance>> = BTreeMap::new();
            for i in &chosen.instances {
                by_region.entry(i.region.clone()).or_default().push(i);
            }
            let mut opts = ssh_options(ctx);
            opts.fanout = fanout.unwrap_or(64);
            let mut results = Vec::new();
            for (region, instances) in by_region {
                let files = releases
                    .list(product, &region)
                    .await?
                    .into_iter()
                    .filter(|f| &f.name == name)
                    .collect::<Vec<_>>();
                if files.is_empty() {
                    bail!(exit::Coded::new(exit::NOT_FOUND, format!("release {name} is not in the bucket of {region}: `cerveza release push` it first")));
                }
                let mut script =
                    format!("set -e; d={}; mkdir -p \"$d\"; cd \"$d\"", sh_quote(&dest));
                for f in &files {
                    check_word("file name", &f.file)?;
                    let url = releases
                        .presigned_url(product, &region, name, &f.file, Duration::from_secs(900))
                        .await?;
                    // A temporary name of its own (mktemp): two deploys into one
                    // directory at once each check their own copy, and the last `mv`
                    // (atomic) wins with a whole, checked file.
                    script.push_str(&format!(
                        "; t=$(mktemp {pattern}); trap 'rm -f \"$t\"' EXIT; curl -fsS --retry 2 -o \"$t\" {url}; echo {sum}\"$t\" | sha256sum -c --quiet -; chmod 0644 \"$t\"; mv \"$t\" {file}; trap - EXIT",
                        pattern = sh_quote(&format!(".{}.XXXXXX", f.file)),
                        url = sh_quote(&url),
                        sum = sh_quote(&format!("{}  ", f.sha256)),
                        file = sh_quote(&f.file),
                    ));
                }
                if let Some(cmd) = run {
                    script.push_str("; ");
                    script.push_str(cmd);
                }
                let (targets, failed) = reach(ctx, &backends, &instances, false, None).await;
                results.extend(failed);
                let live = ctx.output == Output::Table;
                let on_line = |host: &str, _: cerveza_remote::Stream, line: &str| {
                    if live {
                        output::emit(&format!("{host}: {}\n", output::clean(line)));
                    }
                };
                results.extend(cerveza_remote::run(&targets, &[script], &opts, &on_line).await);
            }
            if ctx.output == Output::Json {
                output::print_json(&results)?;
            } else if results.iter().any(|r| !r.stderr.is_empty()) {
                print_gathered(
                    &results
                        .iter()
                        .filter(|r| r.status != cerveza_remote::Status::Ok)
                        .cloned()
                        .collect::<Vec<_>>(),
                );
            }
            Ok(finish(&results, &chosen.left_out))
        }
    }
}
