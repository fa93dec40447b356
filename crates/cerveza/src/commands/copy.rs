//! `cerveza copy SELECTION SRC... DEST` and `cerveza copy --gather SELECTION SRC... DIR`:
//! scp through the same connections, host keys, fan-out and limits as `remote`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use cerveza_core::model::Instance;
use cerveza_core::selection::Selection;
use cerveza_remote::{Stream, Transfer};

use super::remote::{finish, reach, run_options, running_hosts};
use super::Ctx;
use crate::cli::{FanoutArgs, Output};
use crate::exit;
use crate::output::{self, clean};

/// Options of `copy`.
pub struct CopyArgs {
    /// Which hosts.
    pub selection: String,
    /// Sources, then the destination.
    pub paths: Vec<PathBuf>,
    /// Fetch from the hosts into `DEST/<host>/`.
    pub gather: bool,
    /// Directories too.
    pub recursive: bool,
    /// Addresses, fan-out, limit, reuse.
    pub fan: FanoutArgs,
}

/// Runs `copy`.
pub async fn run(ctx: &Ctx, args: &CopyArgs) -> Result<u8> {
    let Some((dest, sources)) = args.paths.split_last() else {
        bail!(exit::Coded::new(
            exit::USAGE,
            "copy needs a source and a destination"
        ));
    };
    let transfer = if args.gather {
        let mut remote = Vec::new();
        for s in sources {
            let Some(s) = s.to_str() else {
                bail!(exit::Coded::new(
                    exit::USAGE,
                    format!("remote path {} is not UTF-8", s.display())
                ));
            };
            remote.push(s.to_owned());
        }
        Transfer::Gather {
            sources: remote,
            dir: dest.clone(),
        }
    } else {
        for s in sources {
            if !s.exists() {
                bail!(exit::Coded::new(
                    exit::NOT_FOUND,
                    format!("{}: no such local file", s.display())
                ));
            }
            if s.is_dir() && !args.recursive {
                bail!(exit::Coded::new(
                    exit::USAGE,
                    format!("{} is a directory: add -r to copy it", s.display())
                ));
            }
        }
        let Some(dest) = dest.to_str() else {
            bail!(exit::Coded::new(
                exit::USAGE,
                format!("remote path {} is not UTF-8", dest.display())
            ));
        };
        Transfer::To {
            sources: sources.to_vec(),
            dest: dest.to_owned(),
        }
    };
    let sel = Selection::parse(&args.selection)?;
    let backends = ctx.backends().await;
    let fleet = running_hosts(ctx, &backends, &sel).await?;
    let chosen: Vec<&Instance> = fleet.instances.iter().collect();
    let (targets, mut failed) =
        reach(ctx, &backends, &chosen, args.fan.public, args.fan.timeout).await;
    let opts = run_options(ctx, &args.fan);
    let live = ctx.output == Output::Table;
    let on_line = |host: &str, _: Stream, line: &str| {
        if live {
            eprintln!("{host}: {}", clean(line));
        }
    };
    for f in &failed {
        on_line(&f.host, Stream::Err, f.stderr.trim_end());
    }
    let mut results =
        cerveza_remote::copy(&targets, &transfer, args.recursive, &opts, &on_line).await;
    results.append(&mut failed);
    results.sort_by(|a, b| a.host.cmp(&b.host));
    if ctx.output == Output::Json {
        output::print_json(&results)?;
    }
    Ok(finish(&results, &fleet.left_out))
}
