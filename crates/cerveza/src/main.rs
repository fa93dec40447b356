//! `cerveza`: run a fleet of EC2 hosts across regions by human-readable hostname.

mod cli;
mod colour;
mod commands;
mod complete;
mod config;
mod exit;
mod output;
mod progress;
mod redact;

use std::process::ExitCode;

use anyhow::Result;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, WaitArgs};
use commands::existing::Verb;
use commands::Ctx;

fn init_logging(verbose: u8, colour: bool) {
    let default = match verbose {
        // The SDK's own warnings about loading credentials repeat what the error that
        // follows says, with its cause (and name files a user did not ask for).
        0 => "warn,aws_config=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("CERVEZA_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    redact::add_env_secrets();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(redact::Redacting)
        .with_ansi(colour)
        .with_target(false)
        .init();
}

/// Turns the paper's flag form into a subcommand.
fn paper_command(cli: &mut Cli) -> Result<Option<Command>> {
    let p = std::mem::take(&mut cli.paper);
    if (p.forget || p.delete_volumes) && p.terminate.is_none() {
        return Err(exit::Coded::new(
            exit::USAGE,
            "--forget and --delete-volumes go with --terminate (or `cerveza terminate HOST --forget`)",
        )
        .into());
    }
    let wait = || WaitArgs {
        no_wait: p.no_wait,
        wait_timeout: p.wait_timeout,
    };
    let cmd = if let Some(hosts) = p.start {
        Some(Command::Start {
            hosts,
            zone: p.zone.clone(),
            profile: p.profile.clone(),
            wait: wait(),
        })
    } else if let Some(hosts) = p.stop {
        Some(Command::Stop {
            hosts,
            wait: wait(),
        })
    } else if let Some(hosts) = p.restart {
        Some(Command::Restart {
            hosts,
            wait: wait(),
        })
    } else if let Some(hosts) = p.reboot {
        Some(Command::Reboot { hosts })
    } else {
        p.terminate.map(|hosts| Command::Terminate {
            hosts,
            forget: p.forget,
            delete_volumes: p.delete_volumes,
            wait: wait(),
        })
    };
    // `cerveza --no-wait stop web01`: the wait flags before a subcommand apply to it.
    if let Some(
        Command::Start { wait: w, .. }
        | Command::Stop { wait: w, .. }
        | Command::Restart { wait: w, .. }
        | Command::Terminate { wait: w, .. },
    ) = &mut cli.command
    {
        w.no_wait |= p.no_wait;
        w.wait_timeout = w.wait_timeout.or(p.wait_timeout);
    }
    match (&cmd, &mut cli.command) {
        (Some(_), Some(_)) => Err(exit::Coded::new(
            exit::USAGE,
            "use either the flag form (--start HOST) or a subcommand (start HOST), not both",
        )
        .into()),
        (Some(_), None) => Ok(cmd),
        // `cerveza --zone Z --profile P start demo01`: the top-level flags feed the subcommand.
        (None, Some(Command::Start { zone, profile, .. })) => {
            *zone = zone.take().or(p.zone);
            *profile = profile.take().or(p.profile);
            Ok(None)
        }
        (None, _) if p.zone.is_some() || p.profile.is_some() => Err(exit::Coded::new(
            exit::USAGE,
            "--zone and --profile go with start (`cerveza start HOST --zone Z --profile P`)",
        )
        .into()),
        (None, _) => Ok(None),
    }
}

async fn run(mut cli: Cli) -> Result<u8> {
    let command = match paper_command(&mut cli)? {
        Some(c) => c,
        None => match cli.command.take() {
            Some(c) => c,
            None => {
                use clap::CommandFactory;
                Cli::command().print_help()?;
                return Ok(exit::USAGE);
            }
        },
    };
    // Commands that need no configuration (init writes it).
    match &command {
        Command::Init { dir } => {
            return commands::init::run(
                dir.as_deref(),
                cli.global.product.as_deref(),
                cli.global.regions.as_deref(),
            )
        }
        Command::Completions { shell } => {
            complete::registration(*shell, &mut std::io::stdout().lock())?;
            return Ok(exit::OK);
        }
        Command::Man { out } => return commands::man::run(out.as_deref()),
        Command::IamPolicy { commands } => return iam_policy(&cli, commands),
        Command::Fleet {
            command: cli::FleetCommand::Schema { kind },
        } => return commands::plan::run_schema(*kind),
        _ => {}
    }
    let ctx = Ctx::new(&cli.global)?;
    // EC2's buckets outlive a command: what the last one spent is where this one starts.
    let pacing = cerveza_aws::pacing_file(
        &config::default_state_dir(),
        ctx.config.endpoint_url.as_deref(),
    );
    cerveza_aws::pacer().restore(&pacing);
    let outcome = dispatch(&ctx, &command).await;
    if let Err(e) = cerveza_aws::pacer().persist(&pacing) {
        tracing::debug!(
            "could not save the request pacing to {}: {e}",
            pacing.display()
        );
    }
    outcome
}

/// `iam-policy`: scoped by the config when there is one (the DNS backend, the registry
/// table, the release buckets), by the defaults otherwise.
fn iam_policy(cli: &Cli, commands: &[String]) -> Result<u8> {
    use commands::iam_policy::{run, Scope};
    let scope = match Ctx::new(&cli.global) {
        Ok(ctx) => {
            let product = ctx
                .config
                .product()
                .map_or_else(|_| "*".to_owned(), ToString::to_string);
            Scope {
                route53: ctx.config.dns == config::DnsBackend::Route53,
                table: ctx.config.registry_table.clone(),
                buckets: match &ctx.config.release_bucket {
                    Some(b) => b
                        .replace("{region}", "*")
                        .replace("{account}", "*")
                        .replace("{product}", &product),
                    None => format!("cerveza-{product}-*"),
                },
            }
        }
        Err(e) => {
            eprintln!("note: no configuration ({e:#}): the policy assumes the defaults (no Route53, table cerveza-hosts, buckets cerveza-*)");
            Scope {
                route53: false,
                table: "cerveza-hosts".into(),
                buckets: "cerveza-*".into(),
            }
        }
    };
    run(commands, &scope)
}

async fn dispatch(ctx: &Ctx, command: &Command) -> Result<u8> {
    match command {
        Command::Init { .. }
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::IamPolicy { .. }
        | Command::Fleet {
            command: cli::FleetCommand::Schema { .. },
        } => {
            unreachable!("handled above")
        }
        Command::Plan {
            file,
            replace,
            prune,
        } => {
            let args = commands::plan::PlanArgs {
                file: Some(file.clone()),
                replace: replace.clone(),
                prune: *prune,
                ..Default::default()
            };
            // `terraform plan -detailed-exitcode`: 2 means "differs", so no error may
            // exit 2 here.
            match commands::plan::run_plan(ctx, &args).await {
                Err(e) if exit::code_of(&e) == exit::USAGE => {
                    Err(exit::Coded::new(exit::FAILURE, format!("{e:#}")).into())
                }
                other => other,
            }
        }
        Command::Apply {
            file,
            saved,
            replace,
            prune,
            yes,
            wait,
        } => {
            let args = commands::plan::PlanArgs {
                file: file.clone(),
                saved: saved.clone(),
                replace: replace.clone(),
                prune: *prune,
                yes: *yes,
            };
            commands::plan::run_apply(ctx, &args, wait).await
        }
        Command::Fleet {
            command: cli::FleetCommand::Export,
        } => commands::plan::run_export(ctx).await,
        Command::Start {
            hosts,
            zone,
            profile,
            wait,
        } => commands::start::run(ctx, hosts, zone.as_ref(), profile.as_ref(), wait).await,
        Command::Stop { hosts, wait } => {
            commands::existing::run(ctx, Verb::Stop, hosts, wait).await
        }
        Command::Restart { hosts, wait } => {
            commands::existing::run(ctx, Verb::Restart, hosts, wait).await
        }
        Command::Reboot { hosts } => {
            commands::existing::run(ctx, Verb::Reboot, hosts, &WaitArgs::default()).await
        }
        Command::Terminate {
            hosts,
            forget,
            delete_volumes,
            wait,
        } => {
            let verb = Verb::Terminate {
                forget: *forget,
                delete_volumes: *delete_volumes,
            };
            commands::existing::run(ctx, verb, hosts, wait).await
        }
        Command::Volumes { command } => commands::volumes::run(ctx, command).await,
        Command::Backup {
            command: Some(cli::BackupCommand::List { selection }),
            ..
        } => commands::backup::list(ctx, selection).await,
        Command::Backup {
            command:
                Some(cli::BackupCommand::Prune {
                    selection,
                    keep,
                    older_than,
                    dry_run,
                }),
            ..
        } => commands::backup::prune(ctx, selection, *keep, *older_than, *dry_run).await,
        Command::Backup {
            command: None,
            selection,
            wait,
            copy_to,
            freeze,
            freeze_timeout,
        } => {
            let freeze = freeze.then_some(*freeze_timeout);
            commands::backup::run(ctx, selection, *wait, copy_to, freeze).await
        }
        Command::Restore {
            host,
            from,
            zone,
            delete_replaced,
            wait,
        } => {
            let args = commands::restore::RestoreArgs {
                from: from.as_deref(),
                zone: zone.as_ref(),
                delete_replaced: *delete_replaced,
            };
            commands::restore::restore(ctx, host, &args, wait).await
        }
        Command::Move { host, zone, wait } => {
            commands::restore::move_host(ctx, host, zone, wait).await
        }
        Command::Registry { command } => commands::registry::run(ctx, command).await,
        Command::Release { command } => commands::release::run(ctx, command).await,
        Command::Remote { close: true, .. } => commands::remote::close(ctx).await,
        Command::Remote {
            selection,
            command,
            gather,
            fan,
            close: false,
        } => {
            let opts = commands::remote::RemoteArgs {
                gather: *gather,
                fan: fan.clone(),
            };
            commands::remote::run(ctx, selection, command, &opts).await
        }
        Command::Ssh {
            host,
            public,
            command,
        } => commands::remote::ssh(ctx, host, *public, command).await,
        Command::Copy {
            selection,
            paths,
            gather,
            recursive,
            fan,
        } => {
            let args = commands::copy::CopyArgs {
                selection: selection.clone(),
                paths: paths.clone(),
                gather: *gather,
                recursive: *recursive,
                fan: fan.clone(),
            };
            commands::copy::run(ctx, &args).await
        }
        Command::Hostkeys {
            command: cli::HostkeysCommand::Sync { selection, no_wait },
        } => commands::hostkeys::sync(ctx, selection, *no_wait).await,
        Command::Doctor {
            selection,
            only,
            volume_age,
            public,
            fanout,
            timeout,
        } => {
            let args = commands::doctor::DoctorArgs {
                selection: selection.clone(),
                only: only.clone(),
                volume_age: *volume_age,
                public: *public,
                fanout: *fanout,
                timeout: *timeout,
            };
            commands::doctor::run(ctx, &args).await
        }
        Command::Eip { command } => {
            let (verb, hosts) = match command {
                cli::EipCommand::Attach { hosts } => (Verb::EipAttach, hosts),
                cli::EipCommand::Detach { hosts } => (Verb::EipDetach, hosts),
            };
            commands::existing::run(ctx, verb, hosts, &WaitArgs::default()).await
        }
        Command::List {
            selection,
            all,
            region_timeout,
        } => commands::list::run(ctx, selection, *all, *region_timeout).await,
        Command::Show { host } => commands::show::run(ctx, host).await,
        Command::Profiles { command } => commands::profiles::run(ctx, command),
        Command::Dns { command } => commands::dns::run(ctx, command).await,
        Command::Access { command } => commands::access::run(ctx, command).await,
        Command::Export {
            kind,
            selection,
            out,
            check,
        } => commands::export::run(ctx, *kind, selection, out.as_deref(), *check).await,
        Command::Userdata {
            host,
            profile,
            zone,
            raw,
        } => commands::userdata::run(ctx, host, profile.as_ref(), zone.as_ref(), *raw).await,
    }
}

fn main() -> ExitCode {
    // `CERVEZA_COMPLETE=bash cerveza -- cerveza sto<Tab>`: answer the shell and exit.
    clap_complete::CompleteEnv::with_factory(cli::command)
        .var(complete::VAR)
        .bin("cerveza")
        .completer("cerveza")
        .complete();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let choice = colour::from_args(&args);
    let colour = colour::init(choice);
    let clap_colour = match choice {
        cli::ColorChoice::Always => clap::ColorChoice::Always,
        cli::ColorChoice::Never => clap::ColorChoice::Never,
        // clap decides per stream, by the same conventions (NO_COLOR, TERM=dumb).
        cli::ColorChoice::Auto => clap::ColorChoice::Auto,
    };
    let cli = match cli::command()
        .color(clap_colour)
        .try_get_matches_from(&args)
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        // `plan` exits 2 for "the fleet differs", as `terraform plan -detailed-exitcode`:
        // a mistyped flag there must not look like a plan with changes.
        Err(e) if e.use_stderr() && args.iter().skip(1).any(|a| a == "plan") => {
            let _ = e.print();
            return ExitCode::from(exit::FAILURE);
        }
        Err(e) => e.exit(),
    };
    init_logging(cli.global.verbose, colour);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Each cause once: SDK errors repeat their sources in their own text.
            let mut shown: Vec<String> = Vec::new();
            for cause in e.chain().map(|c| c.to_string()) {
                if !shown.iter().any(|s| s.contains(cause.trim_end())) {
                    shown.push(cause.trim_end().to_owned());
                }
            }
            eprintln!("{} {}", colour::error_label(), shown[0]);
            for cause in &shown[1..] {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::code_of(&e))
        }
    }
}
