//! The command line: subcommands, plus the paper's flag form
//! (`cerveza -m noc --zone ap-southeast-1a --start demo01 --profile UbuntuGeneric32Bit`).

use std::path::PathBuf;
use std::time::Duration;

use cerveza_core::{ProfileName, Zone};
use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

const ABOUT: &str = "Run a fleet of EC2 hosts across regions by human-readable hostname.";

const AFTER_HELP: &str = "\
Examples:
  cerveza -m noc start demo01 --zone ap-southeast-1a --profile UbuntuGeneric32Bit
  cerveza -m noc stop demo01
  cerveza -m noc start demo01                 # profile and zone come from the registry
  cerveza -m noc start web[01-05] --zone us-east-1b --profile Web
  cerveza -m noc list 'dev-mysql*' --output json
  cerveza -m noc --zone ap-southeast-1a --start demo01 --profile UbuntuGeneric32Bit   # paper form

Exit codes:
  0 success   1 failure   2 usage or invalid input   3 not found
  4 conflict (another operator, a stray instance)   5 partial: some hosts or regions failed
  6 a service was unreachable or a wait timed out

Configuration is layered: flags, then CERVEZA_* environment variables, then the config
file (--config, CERVEZA_CONFIG, or ~/.config/cerveza/config.toml), then defaults.
AWS credentials come from the standard chain (environment, ~/.aws, instance role).";

/// Two or three real examples for every command, shown at the end of its `--help` and in
/// its man page (a test checks that every command has them).
const EXAMPLES: &[(&str, &[&str])] = &[
    (
        "start",
        &[
            "cerveza -m noc start demo01 --zone ap-southeast-1a --profile UbuntuGeneric32Bit",
            "cerveza -m noc start demo01                 # profile and zone from the registry",
            "cerveza -m noc start 'web[01-05]' --zone us-east-1b --profile Web",
        ],
    ),
    (
        "stop",
        &[
            "cerveza -m noc stop demo01",
            "cerveza -m noc stop 'web*' '!web01'          # a selection",
            "cerveza -m noc stop zone:us-east-1b --no-wait",
        ],
    ),
    (
        "restart",
        &[
            "cerveza -m noc restart demo01",
            "cerveza -m noc restart @dev-mysql             # the host group dev-mysql01, 02, …",
        ],
    ),
    (
        "reboot",
        &[
            "cerveza -m noc reboot demo01",
            "cerveza -m noc reboot 'web[01-03]'",
        ],
    ),
    (
        "terminate",
        &[
            "cerveza -m noc terminate web03              # keeps profile, zone and data volumes",
            "cerveza -m noc terminate web03 --forget     # also frees the name",
            "cerveza -m noc terminate db01 --delete-volumes",
        ],
    ),
    (
        "list",
        &[
            "cerveza -m noc list",
            "cerveza -m noc list 'dev-mysql*' region:us-east-1 -o json",
            "cerveza -m noc list --all                   # terminated instances too",
        ],
    ),
    (
        "show",
        &[
            "cerveza -m noc show demo01",
            "cerveza -m noc show demo01 -o json",
        ],
    ),
    (
        "userdata",
        &[
            "cerveza -m noc userdata web01",
            "cerveza -m noc userdata web09 --profile Web --zone us-east-1b -o json",
            "cerveza -m noc userdata web01 --raw > web01.gz",
        ],
    ),
    (
        "export",
        &[
            "cerveza -m noc export ssh-config >> ~/.ssh/config.d/noc",
            "cerveza -m noc export nagios --out /etc/nagios4/conf.d/cerveza.cfg",
            "cerveza -m noc export ganglia --out /etc/ganglia/cerveza/ --check || reload-ganglia",
        ],
    ),
    (
        "remote",
        &[
            "cerveza -m noc remote mysql -- uptime",
            "cerveza -m noc remote 'web*' -b -- cat /etc/debian_version",
            "cerveza remote --close                      # end the kept connections",
        ],
    ),
    (
        "plan",
        &[
            "cerveza plan fleet.yaml                     # exit 0: as the file says, 2: it differs",
            "cerveza plan fleet.yaml --replace db01 --prune -o json > plan.json",
        ],
    ),
    (
        "apply",
        &[
            "cerveza apply fleet.yaml                    # shows the plan, asks, converges",
            "cerveza apply --plan plan.json              # exactly what was reviewed, or nothing",
            "cerveza apply fleet.yaml --yes --no-wait",
        ],
    ),
    (
        "fleet",
        &[
            "cerveza -m noc fleet export > fleet.yaml",
            "cerveza fleet schema fleet > fleet.schema.json",
        ],
    ),
    (
        "fleet export",
        &[
            "cerveza -m noc fleet export > fleet.yaml",
            "cerveza -m noc fleet export | diff fleet.yaml -",
        ],
    ),
    (
        "fleet schema",
        &[
            "cerveza fleet schema fleet > fleet.schema.json",
            "cerveza fleet schema profiles > profiles.schema.json",
        ],
    ),
    (
        "doctor",
        &[
            "cerveza -m noc doctor",
            "cerveza -m noc doctor 'web*' --only resolver,nsswitch -o json",
            "cerveza -m noc doctor --only security-groups,registry,idle-addresses   # cloud side only",
        ],
    ),
    (
        "copy",
        &[
            "cerveza -m noc copy 'web*' build/app.conf /etc/app/",
            "cerveza -m noc copy -r zone:us-east-1b build/static /srv/www/",
            "cerveza -m noc copy --gather 'web*' /var/log/syslog ./logs     # ./logs/web01/syslog, …",
        ],
    ),
    (
        "hostkeys",
        &["cerveza -m noc hostkeys sync"],
    ),
    (
        "hostkeys sync",
        &[
            "cerveza -m noc hostkeys sync",
            "cerveza -m noc hostkeys sync 'web*' -o json",
        ],
    ),
    (
        "release",
        &[
            "cerveza -m noc release push build/app.tar.gz --name v1.2.0",
            "cerveza -m noc release deploy v1.2.0 'web*' --run 'tar xzf app.tar.gz'",
        ],
    ),
    (
        "release push",
        &[
            "cerveza -m noc release push build/app.tar.gz --name v1.2.0",
            "cerveza -m noc release push build/app.sh --name v1 -o json",
        ],
    ),
    (
        "release list",
        &[
            "cerveza -m noc release list",
            "cerveza -m noc release list -o json",
        ],
    ),
    (
        "release deploy",
        &[
            "cerveza -m noc release deploy v1.2.0 'web*'",
            "cerveza -m noc release deploy v1.2.0 mysql --dest /srv/app --run 'sh install.sh'",
        ],
    ),
    (
        "ssh",
        &[
            "cerveza -m noc ssh web01",
            "cerveza -m noc ssh web01 -- df -h",
            "cerveza -m noc ssh vpn01 --public",
        ],
    ),
    ("registry", &["cerveza -m noc registry sync"]),
    (
        "registry sync",
        &[
            "cerveza -m noc registry sync",
            "cerveza -m noc registry sync -o json",
        ],
    ),
    ("volumes", &["cerveza -m noc volumes list"]),
    (
        "volumes list",
        &[
            "cerveza -m noc volumes list",
            "cerveza -m noc volumes list db01 -o json",
        ],
    ),
    (
        "eip",
        &[
            "cerveza -m noc eip attach vpn01",
            "cerveza -m noc eip detach vpn01",
        ],
    ),
    (
        "eip attach",
        &[
            "cerveza -m noc eip attach vpn01",
            "cerveza -m noc eip attach 'vpn*'",
        ],
    ),
    (
        "eip detach",
        &["cerveza -m noc eip detach vpn01           # releases the address"],
    ),
    (
        "dns",
        &[
            "cerveza -m noc dns list",
            "cerveza -m noc dns sync --dry-run",
        ],
    ),
    (
        "dns list",
        &["cerveza -m noc dns list", "cerveza -m noc dns list -o json"],
    ),
    (
        "dns sync",
        &[
            "cerveza -m noc dns sync --dry-run",
            "cerveza -m noc dns sync",
        ],
    ),
    (
        "access",
        &[
            "cerveza -m noc access user add alice",
            "cerveza -m noc access grant alice 'dev-mysql*.us-east-1'",
            "cerveza -m noc access check alice dev-mysql01",
        ],
    ),
    (
        "access grant",
        &[
            "cerveza -m noc access grant alice 'dev-mysql*.us-east-1'",
            "cerveza -m noc access grant bob web01.us-east-1b",
            "cerveza -m noc access grant carol '*'",
        ],
    ),
    (
        "access revoke",
        &["cerveza -m noc access revoke alice 'dev-mysql*.us-east-1'"],
    ),
    (
        "access list",
        &[
            "cerveza -m noc access list",
            "cerveza -m noc access list alice -o json",
        ],
    ),
    (
        "access check",
        &[
            "cerveza -m noc access check alice dev-mysql01",
            "cerveza -m noc access check alice web09 --zone us-east-1b",
        ],
    ),
    (
        "access user",
        &[
            "cerveza -m noc access user add alice",
            "cerveza -m noc access user remove alice",
        ],
    ),
    (
        "access user add",
        &[
            "cerveza -m noc access user add alice",
            "cerveza -m noc access user add bob --name 'Bob Smith' --shell /bin/bash",
        ],
    ),
    (
        "access user remove",
        &["cerveza -m noc access user remove alice"],
    ),
    (
        "access filter",
        &[
            "cerveza -m noc access filter dev-mysql01",
            "cerveza -m noc access filter web09 --zone us-east-1b",
        ],
    ),
    (
        "profiles",
        &["cerveza profiles list", "cerveza profiles check"],
    ),
    (
        "profiles list",
        &[
            "cerveza profiles list",
            "cerveza --profiles ./profiles profiles list -o json",
        ],
    ),
    (
        "profiles show",
        &[
            "cerveza profiles show UbuntuGeneric32Bit",
            "cerveza profiles show MysqlRaid10",
        ],
    ),
    (
        "profiles check",
        &[
            "cerveza profiles check",
            "cerveza --profiles ./new-profiles profiles check",
        ],
    ),
    (
        "init",
        &[
            "cerveza init",
            "cerveza init --product noc --regions us-east-1,eu-west-1",
            "cerveza init --dir ./noc-config --product noc",
        ],
    ),
    (
        "completions",
        &[
            "echo 'source <(cerveza completions bash)' >> ~/.bashrc",
            "cerveza completions zsh > ~/.zfunc/_cerveza",
            "cerveza completions fish > ~/.config/fish/completions/cerveza.fish",
        ],
    ),
    (
        "backup",
        &[
            "cerveza -m noc backup db01 --wait",
            "cerveza -m noc backup 'profile:Mysql'",
            "cerveza -m noc backup list db01",
        ],
    ),
    (
        "restore",
        &[
            "cerveza -m noc restore db01                    # its newest complete set, its zone",
            "cerveza -m noc restore db01 --zone us-east-1b --from db01-20261204T101500Z-3f2a",
        ],
    ),
    (
        "move",
        &["cerveza -m noc move db01 --zone us-east-1b"],
    ),
    (
        "backup list",
        &["cerveza -m noc backup list", "cerveza -m noc backup list 'db*' -o json"],
    ),
    (
        "backup prune",
        &[
            "cerveza -m noc backup prune --keep 7 --dry-run",
            "cerveza -m noc backup prune 'db*' --older-than 30d",
        ],
    ),
    (
        "iam-policy",
        &[
            "cerveza iam-policy > cerveza-policy.json",
            "cerveza iam-policy list show export     # a read-only policy",
        ],
    ),
    (
        "man",
        &[
            "cerveza man --out ~/.local/share/man/man1 && man cerveza-start",
            "cerveza man | man -l -",
        ],
    ),
];

/// The examples of the command at `path` (`"access user add"`), if any.
pub fn examples(path: &str) -> Option<&'static [&'static str]> {
    EXAMPLES.iter().find(|(p, _)| *p == path).map(|(_, e)| *e)
}

fn with_examples(mut cmd: clap::Command, path: &str) -> clap::Command {
    if let Some(lines) = examples(path) {
        let text: String = lines.iter().map(|l| format!("\n  {l}")).collect();
        cmd = cmd.after_help(format!("Examples:{text}"));
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |s| with_examples(s, &sub_path));
    }
    cmd
}

/// The command definition (for completion, man pages and parsing), with every
/// command's examples.
pub fn command() -> clap::Command {
    with_examples(<Cli as clap::CommandFactory>::command(), "")
}

/// Parses a duration argument (`500ms`, `20s`, `10m`): a bad one is a usage error.
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; a duration looks like 500ms, 20s or 10m"))
}

/// `cerveza --version`: says when the binary honours the test-only switches.
const VERSION: &str = if cfg!(feature = "test-hooks") {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (built with test-hooks: not for production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

/// `cerveza`
#[derive(Debug, Parser)]
#[command(name = "cerveza", version = VERSION, about = ABOUT, after_help = AFTER_HELP)]
#[command(group(clap::ArgGroup::new("paper_action").multiple(false)))]
pub struct Cli {
    /// Settings shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// The paper's flag form.
    #[command(flatten)]
    pub paper: PaperArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Product: the fleet namespace (`noc`, `dev`); DNS domains are <product>.private/.public.
    #[arg(short = 'm', long = "product", env = "CERVEZA_PRODUCT", global = true)]
    pub product: Option<String>,

    /// Config file [default: ~/.config/cerveza/config.toml].
    #[arg(
        short = 'c',
        long,
        env = "CERVEZA_CONFIG",
        global = true,
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Directory of profile YAML files [default: `profiles` beside the config file].
    #[arg(long, env = "CERVEZA_PROFILES", global = true, value_name = "DIR")]
    pub profiles: Option<PathBuf>,

    /// Regions `list` and `show` search, comma separated [default: the paper's five].
    #[arg(
        long,
        env = "CERVEZA_REGIONS",
        global = true,
        value_delimiter = ',',
        value_name = "REGION,…",
        add = ArgValueCompleter::new(crate::complete::complete_regions))]
    pub regions: Option<Vec<String>>,

    /// AWS endpoint for every service, e.g. a local moto (http://127.0.0.1:5000). The
    /// SDK's own AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE> work too.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Output format.
    #[arg(short = 'o', long, env = "CERVEZA_OUTPUT", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Hosts (and regions) handled at once [default: 512]; their waits share requests.
    #[arg(
        short = 'j',
        long,
        env = "CERVEZA_CONCURRENCY",
        global = true,
        value_name = "N"
    )]
    pub concurrency: Option<usize>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress output, only results and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Colour on stderr: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (or `TERM=dumb`).
    Auto,
    /// Always, even into a pipe.
    Always,
    /// Never.
    Never,
}

/// Shells `cerveza completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// bash 4.4+ (`source <(cerveza completions bash)`).
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
    /// elvish.
    Elvish,
}

/// How `remote` and `copy` reach many hosts at once.
#[derive(Debug, Args, Clone, Default)]
pub struct FanoutArgs {
    /// Connect to public addresses (default: private, through your VPN).
    #[arg(long)]
    pub public: bool,
    /// Hosts at once [default: 64].
    #[arg(short = 'f', long, value_name = "N")]
    pub fanout: Option<usize>,
    /// Give each host this long, connecting included (e.g. 30s); then its ssh is killed and it counts as timed out (exit 124).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,
    /// Open a new connection to every host, and keep none ([remote] persist is the time kept).
    #[arg(long)]
    pub no_reuse: bool,
}

/// `--zone`/`--profile`/`--no-wait` for commands that start hosts.
#[derive(Debug, Args, Clone, Default)]
pub struct WaitArgs {
    /// Return once the API accepted the request, without waiting for the new state.
    #[arg(long)]
    pub no_wait: bool,

    /// Longest wait per host, e.g. 10m or 90s [default: 10m].
    #[arg(long, env = "CERVEZA_WAIT_TIMEOUT", value_name = "DURATION", value_parser = duration)]
    pub wait_timeout: Option<Duration>,
}

/// The paper's form: one action flag with its hosts, no subcommand.
#[derive(Debug, Args, Default)]
pub struct PaperArgs {
    /// Paper form of `start`.
    #[arg(long, value_name = "HOST", num_args = 1.., group = "paper_action", help_heading = "Paper form", add = ArgValueCompleter::new(crate::complete::complete_selection))]
    pub start: Option<Vec<String>>,
    /// Paper form of `stop`.
    #[arg(long, value_name = "HOST", num_args = 1.., group = "paper_action", help_heading = "Paper form", add = ArgValueCompleter::new(crate::complete::complete_selection))]
    pub stop: Option<Vec<String>>,
    /// Paper form of `restart`.
    #[arg(long, value_name = "HOST", num_args = 1.., group = "paper_action", help_heading = "Paper form", add = ArgValueCompleter::new(crate::complete::complete_selection))]
    pub restart: Option<Vec<String>>,
    /// Paper form of `reboot`.
    #[arg(long, value_name = "HOST", num_args = 1.., group = "paper_action", help_heading = "Paper form", add = ArgValueCompleter::new(crate::complete::complete_selection))]
    pub reboot: Option<Vec<String>>,
    /// Paper form of `terminate`.
    #[arg(long, value_name = "HOST", num_args = 1.., group = "paper_action", help_heading = "Paper form", add = ArgValueCompleter::new(crate::complete::complete_selection))]
    pub terminate: Option<Vec<String>>,
    /// Zone for a first start (paper form).
    #[arg(
        long = "zone",
        id = "paper_zone",
        value_name = "ZONE",
        value_parser = Zone::parse,
        help_heading = "Paper form",
        add = ArgValueCompleter::new(crate::complete::complete_zone))]
    pub zone: Option<Zone>,
    /// Instance profile for a first start (paper form).
    #[arg(
        long = "profile",
        id = "paper_profile",
        value_name = "NAME",
        value_parser = ProfileName::parse,
        help_heading = "Paper form",
        add = ArgValueCompleter::new(crate::complete::complete_profile))]
    pub profile: Option<ProfileName>,
    /// With --terminate: also delete the registry record (as `terminate --forget`).
    #[arg(long = "forget", id = "paper_forget", help_heading = "Paper form")]
    pub forget: bool,
    /// With --terminate: also delete the EBS volumes (as `terminate --delete-volumes`).
    #[arg(
        long = "delete-volumes",
        id = "paper_delete_volumes",
        help_heading = "Paper form"
    )]
    pub delete_volumes: bool,
    /// Return once the API accepted the request (paper form; also before a subcommand).
    #[arg(long = "no-wait", id = "paper_no_wait", help_heading = "Paper form")]
    pub no_wait: bool,
    /// Longest wait per host (paper form; also before a subcommand).
    #[arg(
        long = "wait-timeout",
        id = "paper_wait_timeout",
        env = "CERVEZA_WAIT_TIMEOUT",
        value_name = "DURATION",
        value_parser = duration,
        help_heading = "Paper form"
    )]
    pub wait_timeout: Option<Duration>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start hosts: launch new ones, start stopped ones, relaunch ones whose instance is gone.
    ///
    /// The first start of a hostname needs --zone and --profile; afterwards both come
    /// from the registry. Hostnames take ranges: web[01-05].
    Start {
        /// Hostnames or ranges (web[01-05,07]).
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
        /// Availability zone for a first start, e.g. ap-southeast-1a; or another zone for
        /// a host whose claim never got an instance (EC2 refused its launch for capacity).
        #[arg(long, value_name = "ZONE", value_parser = Zone::parse, add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Option<Zone>,
        /// Instance profile for a first start (`cerveza profiles list`).
        #[arg(long, value_name = "NAME", value_parser = ProfileName::parse, add = ArgValueCompleter::new(crate::complete::complete_profile))]
        profile: Option<ProfileName>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop hosts (EBS-backed instances keep their disks; IPs change at next start).
    Stop {
        /// Hostnames, ranges or a selection (`web*`, `zone:us-east-1b`).
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Stop then start hosts (same instance, new IPs).
    Restart {
        /// Hostnames, ranges or a selection.
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Reboot running hosts (same instance, same IPs).
    Reboot {
        /// Hostnames, ranges or a selection.
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
    },
    /// Terminate hosts. The registry keeps profile and zone, so `start` relaunches them.
    Terminate {
        /// Hostnames, ranges or a selection.
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
        /// Also delete the registry record, freeing the hostname for another profile or zone.
        #[arg(long)]
        forget: bool,
        /// Also delete the host's EBS volumes (kept by default, re-attached by the next start).
        #[arg(long)]
        delete_volumes: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List the fleet in every configured region at once.
    ///
    /// Selections: names, globs (dev-mysql*), ranges (web[01-05]), zone:Z, region:R,
    /// profile:P; join with ',' and exclude with a leading '!'.
    List {
        /// What to list [default: everything].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Include terminated instances.
        #[arg(long)]
        all: bool,
        /// Give up on a region after this long, e.g. 20s [default: 20s].
        #[arg(long, env = "CERVEZA_REGION_TIMEOUT", value_name = "DURATION", value_parser = duration)]
        region_timeout: Option<Duration>,
    },
    /// Show one host: its registry record and its instance.
    Show {
        /// The hostname.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_host))]
        host: String,
    },
    /// Show the cloud-init user-data a host is launched with: each part with its type and size.
    ///
    /// Profile and zone come from the registry for known hosts, from --profile and --zone
    /// otherwise. --raw writes the exact gzip bytes EC2 gets.
    Userdata {
        /// The hostname.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_host))]
        host: String,
        /// Instance profile (for a host the registry does not know).
        #[arg(long, value_name = "NAME", value_parser = ProfileName::parse, add = ArgValueCompleter::new(crate::complete::complete_profile))]
        profile: Option<ProfileName>,
        /// Zone (for a host the registry does not know).
        #[arg(long, value_name = "ZONE", value_parser = Zone::parse, add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Option<Zone>,
        /// Write the gzip blob to stdout instead (redirect it to a file).
        #[arg(long)]
        raw: bool,
    },
    /// Write the config that follows from the fleet: ssh_config, hosts, Ganglia, Nagios, …
    ///
    /// Output is sorted and stable. --out writes atomically (a directory for ganglia,
    /// which makes several files); --check exits 1 when the file(s) would change.
    /// A region that cannot be listed stops the export: a partial fleet would drop hosts.
    Export {
        /// What to write.
        #[arg(value_enum)]
        kind: ExportKind,
        /// Only these hosts [default: all].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Write here instead of stdout (a directory for ganglia).
        #[arg(long, value_name = "PATH")]
        out: Option<std::path::PathBuf>,
        /// Write nothing; exit 1 when the files --out names would change.
        #[arg(long)]
        check: bool,
    },
    /// Run a command on many hosts at once, through OpenSSH.
    ///
    /// `cerveza remote 'web*' -- uptime`. A word that names no host selects the hosts whose
    /// name contains it (`cerveza remote mysql -- …`). Output lines are prefixed with the
    /// host; -b gathers identical outputs. Exit code: the highest remote exit code, 255
    /// when a host was unreachable, 124 when one timed out, and at least 5 when a
    /// region could not be listed (its selected hosts did not run the command).
    Remote {
        /// Which hosts (names, globs, ranges, zone:, region:, profile:, ',' and '!').
        #[arg(required_unless_present = "close", value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// The command, after `--`.
        #[arg(last = true, required_unless_present = "close", value_name = "COMMAND")]
        command: Vec<String>,
        /// Gather identical outputs under one folded host list, like `clush -b`.
        #[arg(short = 'b', long)]
        gather: bool,
        #[command(flatten)]
        fan: FanoutArgs,
        /// End every master connection cerveza keeps, and run nothing.
        #[arg(long, conflicts_with_all = ["selection", "command", "gather", "no_reuse"])]
        close: bool,
    },
    /// Copy files to many hosts at once (or from them with --gather), through scp.
    ///
    /// `cerveza copy 'web*' app.conf /etc/app/` copies to every host;
    /// `cerveza copy --gather 'web*' /var/log/syslog ./logs` fetches into ./logs/<host>/.
    /// The same connections, host keys, fan-out and exit codes as `remote`.
    Copy {
        /// Which hosts (names, globs, ranges, zone:, region:, profile:; ',' joins).
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: String,
        /// Local files, then the remote destination (with --gather: remote files, then a local directory).
        #[arg(value_name = "SRC... DEST", num_args = 2.., required = true)]
        paths: Vec<std::path::PathBuf>,
        /// Fetch from each host into DEST/<host>/.
        #[arg(long)]
        gather: bool,
        /// Copy directories too.
        #[arg(short = 'r', long)]
        recursive: bool,
        #[command(flatten)]
        fan: FanoutArgs,
    },
    /// Host keys, learned from each instance's console output and kept by hostname.
    ///
    /// cerveza checks host keys strictly (StrictHostKeyChecking=yes) against its own
    /// known_hosts ([remote] known-hosts, default ~/.local/state/cerveza/known_hosts),
    /// by the name <host>.<product>.private rather than the address. The keys come from
    /// the host key block cloud-init prints to the console at first boot, read through
    /// EC2's API, never from the network on first use; a new instance's keys are fetched
    /// the first time it is reached.
    Hostkeys {
        #[command(subcommand)]
        command: HostkeysCommand,
    },
    /// Releases: pushed once to a bucket in each region, fetched by hosts from their own.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Open an ssh session to one host by name (or run a command there).
    Ssh {
        /// The hostname.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_host))]
        host: String,
        /// Connect to its public address.
        #[arg(long)]
        public: bool,
        /// A command instead of a login shell.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Check the fleet against the paper's outage lessons (reads only, changes nothing).
    ///
    /// Cloud side: security-groups (rules naming a private /32), config-spof (one LDAP
    /// URI, one nameserver, or all of them in one region), registry (point-in-time
    /// recovery and an MRSC replica), registry-tags (records that disagree with tags),
    /// orphan-volumes, idle-addresses, imds (instances that still allow IMDSv1). On each
    /// running host, through ssh like `remote`:
    /// resolver, nsswitch, login-timeouts (LDAP + DNS + autofs waits against sshd's
    /// LoginGraceTime), fstab (nofail), puppet (cron at spread minutes, no daemon),
    /// updatedb (prunes NFS), local-account (a local user with an ssh key). Files only
    /// root can read are read with `sudo -n` when that needs no password.
    ///
    /// Exit code: 0 all passed, 1 a check failed, 5 every check that ran passed but some
    /// hosts or regions could not be checked.
    Doctor {
        /// Hosts the on-host checks visit [default: every running host].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Run only these checks (comma-separated).
        #[arg(long, value_name = "CHECK", value_delimiter = ',', value_parser = PossibleValuesParser::new(cerveza_doctor::Check::ALL.map(|c| c.id())))]
        only: Vec<String>,
        /// An unattached volume of a host that is gone is an orphan once older than this.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "7days")]
        volume_age: Duration,
        /// Reach hosts at their public addresses (default: private, through your VPN).
        #[arg(long)]
        public: bool,
        /// Hosts at once [default: 64].
        #[arg(short = 'f', long, value_name = "N")]
        fanout: Option<usize>,
        /// Give each host this long, connecting included.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s")]
        timeout: Duration,
    },
    /// Show what `apply` would change to make the fleet match a fleet file; changes nothing.
    ///
    /// Reads the registry once and lists each region once, however many hosts. Every
    /// host of the file gets a change: launch, relaunch (its instance is gone), start,
    /// stop, terminate (`state: terminated`), replace (its profile or zone changed:
    /// held unless --replace names it), move (only its zone changed and it has data
    /// volumes: stopped, backed up, restored there, started; held the same way), or
    /// nothing; hosts of the product the file does
    /// not name are unmanaged (held unless --prune). The table shows what differs;
    /// `-o json` is the whole plan, which `apply --plan` carries out.
    ///
    /// Exit code: 0 the fleet is as the file says, 2 it differs (changes, held changes
    /// or unmanaged hosts), anything else an error.
    Plan {
        /// The fleet file (`--- !Fleet`; `cerveza fleet export` writes one).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Replace HOST although it loses its instance (its profile or zone changed), or
        /// move it with its data (only its zone changed).
        #[arg(long, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        replace: Vec<String>,
        /// Terminate and forget hosts the file does not name; their volumes are kept.
        #[arg(long)]
        prune: bool,
    },
    /// Make the fleet match a fleet file, or carry out a saved plan.
    ///
    /// With a file: shows the plan, asks on a terminal (--yes for scripts), then converges
    /// with the guarantees of start, stop and terminate. With --plan: refuses the saved
    /// plan when any host it covers changed since (exit 4), else does exactly what it
    /// says. Killed halfway, the same apply again reaches the same end state.
    Apply {
        /// The fleet file (or give --plan).
        #[arg(value_name = "FILE", required_unless_present = "saved")]
        file: Option<PathBuf>,
        /// A plan saved with `cerveza plan FILE -o json > PLAN`.
        #[arg(long = "plan", id = "saved", value_name = "PLAN", conflicts_with_all = ["file", "replace", "prune"])]
        saved: Option<PathBuf>,
        /// Replace HOST although it loses its instance (its profile or zone changed), or
        /// move it with its data (only its zone changed).
        #[arg(long, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        replace: Vec<String>,
        /// Terminate and forget hosts the file does not name; their volumes are kept.
        #[arg(long)]
        prune: bool,
        /// Do not ask.
        #[arg(short = 'y', long)]
        yes: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The fleet as a file: export it, and the JSON Schemas editors check files with.
    Fleet {
        #[command(subcommand)]
        command: FleetCommand,
    },
    /// The host registry: profile and zone of every host, in one home region.
    ///
    /// While the registry does not answer, existing hosts are handled from their
    /// instances' tags and their records are left behind; `registry sync` brings them
    /// up to date.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Back up hosts' data: one crash-consistent snapshot set of each host's data volumes.
    ///
    /// Each host's set is one EC2 CreateSnapshots of its instance: the data volumes of
    /// its volume profiles, at one instant, the root left out. Every snapshot carries its
    /// volume's tags (host, device, volume profile, member index) and the set's (its id,
    /// `<host>-<UTC time>`, and how many members it has), so a set is complete only when
    /// every member is there and completed. A stopped host's volumes are snapshotted as
    /// they are. Snapshots are taken in the background by EBS (minutes per 100 GiB);
    /// --wait waits for them (up to --wait-timeout, exit 6 after). --copy-to copies each
    /// completed set to other regions (CopySnapshot, within EC2's limits on copies in
    /// progress: paced, not failed), where it can be restored. `backup list` shows
    /// the sets. (A host named `list` is selected as 'list*'.)
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        command: Option<BackupCommand>,
        /// Which hosts (hostnames, globs like 'db*', profile:NAME, zone:…, region:…).
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Wait until every snapshot is completed.
        #[arg(long)]
        wait: bool,
        /// Copy each set to REGION (one of the configured regions) too, once completed
        /// (waits for the copies), tagged as the set is: it can be restored there
        /// [default: `[backup] copy-to`].
        #[arg(long = "copy-to", value_name = "REGION", value_parser = cerveza_core::Region::parse, add = ArgValueCompleter::new(crate::complete::complete_regions))]
        copy_to: Vec<cerveza_core::Region>,
        /// Freeze each running host's data filesystems (fsfreeze through ssh, with sudo)
        /// for the instant the set is taken, then thaw them: each snapshot holds a
        /// filesystem at rest. A host that cannot be frozen is not backed up.
        #[arg(long)]
        freeze: bool,
        /// How long a freeze may last: the host thaws itself after this, whatever
        /// happens to cerveza or its ssh session.
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "30s", requires = "freeze")]
        freeze_timeout: Duration,
    },
    /// Restore a host's data from a backup set, in its zone or another, and start it there.
    ///
    /// Makes one volume per member of a complete set (the host's newest by default) in
    /// ZONE (the host's own zone by default; any zone of the set's region, or of a
    /// region it was copied to with `backup --copy-to`), then makes
    /// them the host's data volumes and starts it: its RAID is assembled from them,
    /// never formatted. The host must be stopped (or have no instance): a stopped
    /// instance in another zone is terminated, its root volume only. Its earlier data
    /// volumes are kept, tagged cerveza:replaced-by=SET, unless --delete-replaced.
    /// Killed at any point, a rerun finishes it; until then, starts of the host refuse.
    Restore {
        /// The host whose data to restore.
        #[arg(value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        host: String,
        /// The set to restore (`cerveza backup list HOST`) [default: its newest complete set].
        #[arg(long, value_name = "SET")]
        from: Option<String>,
        /// Where the restored volumes and the host go [default: where it lives].
        #[arg(long, value_name = "ZONE", value_parser = Zone::parse, add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Option<Zone>,
        /// Delete the host's earlier data volumes instead of keeping them marked replaced.
        #[arg(long)]
        delete_replaced: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Move a host with its data to another zone or region: stop, back up, restore there, start.
    ///
    /// The host is stopped, its data volumes are snapshotted as one set (waiting for it
    /// to complete; to another region, the set is copied there and the copy waited
    /// for), the set is restored in ZONE and the host starts there with its profile,
    /// names and access, as a start does. Its old volumes are kept, marked replaced.
    /// Killed at any point, a rerun finishes the move; the host never has two live
    /// instances or two attached sets.
    Move {
        /// The host to move.
        #[arg(value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        host: String,
        /// The zone to move it to (of its region, or of another configured region).
        #[arg(long, required = true, value_name = "ZONE", value_parser = Zone::parse, add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Zone,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// EBS volumes of the fleet, including orphans (volumes whose host has no instance).
    Volumes {
        #[command(subcommand)]
        command: VolumesCommand,
    },
    /// Elastic IPs: allocated once per host, re-associated at every start.
    Eip {
        #[command(subcommand)]
        command: EipCommand,
    },
    /// DNS names of the fleet: <host>.<product>.private and .public.
    Dns {
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Grant and revoke user access per host, host group, zone or region (LDAP `host`).
    ///
    /// A grant is one of: host.zone, host.region, host.*, group*.zone, group*.region,
    /// group*.*, *.zone, *.region, * (e.g. dev-mysql01.us-east-1b, dev-mysql*.us-east-1).
    Access {
        #[command(subcommand)]
        command: AccessCommand,
    },
    /// Inspect and validate instance and volume profiles.
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Write a commented config file and a profiles directory to start from.
    ///
    /// The product and regions come from -m/--product and --regions; without them,
    /// cerveza asks on a terminal (Enter keeps the default: noc and the paper's five
    /// regions) and takes the defaults elsewhere. Never overwrites a file. Then prints
    /// the next three commands to run.
    Init {
        /// Directory for config.toml and profiles/ [default: ~/.config/cerveza].
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print the shell code that completes cerveza's commands, flags, hostnames, profiles and zones.
    ///
    /// Hostnames come from a local cache of the last `list` (refreshed in the background
    /// when older than a minute), so a Tab never waits for EC2.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the least-privilege IAM policy (JSON) that the given commands need, or all.
    ///
    /// Actions are per command (`cerveza iam-policy list show` is a read-only policy);
    /// Route53's are included when `[dns] backend = "route53"`. The registry statement
    /// names the configured table, the release statement the configured buckets, and
    /// tags go on with each resource (ec2:CreateTags only for RunInstances, CreateVolume
    /// and AllocateAddress). Attach it to the role or user cerveza runs as:
    /// `cerveza iam-policy > cerveza-policy.json`.
    IamPolicy {
        /// Commands the policy is for (start, stop, list, release, …) [default: all].
        #[arg(value_name = "COMMAND")]
        commands: Vec<String>,
    },
    /// Write the manual pages: cerveza(1) and one page per command (cerveza-start(1), …).
    Man {
        /// Directory to write every page into [default: print cerveza(1) to stdout].
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// What `cerveza export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// ssh_config: `Host name fqdn` → address, user, jump host.
    SshConfig,
    /// /etc/hosts lines.
    Hosts,
    /// gmetad data sources and a gmond.conf per cluster (security group).
    Ganglia,
    /// Nagios hosts, hostgroups and generic services.
    Nagios,
    /// Prometheus file_sd JSON.
    Prometheus,
    /// Ansible YAML inventory.
    Ansible,
}

/// `cerveza release …`
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Upload a file once into the release bucket of every configured region.
    Push {
        /// The file.
        path: std::path::PathBuf,
        /// Release name (letters, digits, '.', '_', '-').
        #[arg(long)]
        name: String,
    },
    /// Released files in every region.
    List,
    /// Make hosts fetch a release from their own region's bucket, check it, and run a command.
    Deploy {
        /// Release name.
        name: String,
        /// Which hosts.
        #[arg(required = true, value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Directory the files land in on each host [default: /opt/releases/NAME].
        #[arg(long, value_name = "DIR")]
        dest: Option<String>,
        /// Run this in that directory once the files are there.
        #[arg(long, value_name = "COMMAND")]
        run: Option<String>,
        /// Hosts at once [default: 64].
        #[arg(short = 'f', long, value_name = "N")]
        fanout: Option<usize>,
    },
}

/// `cerveza hostkeys …`
#[derive(Debug, Subcommand)]
pub enum HostkeysCommand {
    /// Read the host keys of the selected hosts from their console output and record them.
    ///
    /// Keys of a new instance replace the host's old ones; keys that differ from the
    /// ones recorded for the same instance are refused (exit 1). EC2 posts the console
    /// a few minutes after boot: for an instance launched in the last 15 minutes this
    /// waits for the keys (up to 3 minutes); a host whose console has none gives exit 5.
    Sync {
        /// Which hosts [default: all].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Do not wait for the keys of new instances.
        #[arg(long)]
        no_wait: bool,
    },
}

/// `cerveza registry …`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Bring the records in line with the instances' tags in every region, and say what
    /// changed.
    ///
    /// A record whose instance changed state (or is gone) is updated; a live instance
    /// the registry does not know gets a record made from its tags. Every write is
    /// conditional. A region that does not answer leaves its hosts as they are (exit 5).
    Sync,
}

/// `cerveza backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// The snapshot sets of the selected hosts (or all), newest first: members, state
    /// (complete, pending, incomplete), size and age, in every configured region.
    List {
        /// Which hosts [default: all].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
    },
    /// Delete old snapshot sets: beyond the newest N of each host, or older than a duration.
    ///
    /// Never a host's newest complete set (wherever it is), and never a set still being
    /// taken. With both --keep and --older-than, a set goes only when it is both beyond
    /// the N newest and older. --dry-run says what would go.
    #[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["keep", "older_than"]))]
    Prune {
        /// Which hosts [default: all].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
        /// Keep the newest N sets of each host.
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Delete sets older than this (e.g. 30d, 12h).
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        older_than: Option<Duration>,
        /// Say what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `cerveza volumes …`
#[derive(Debug, Subcommand)]
pub enum VolumesCommand {
    /// List volumes in every configured region.
    List {
        /// Only the volumes of these hosts [default: all].
        #[arg(value_name = "SELECTION", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        selection: Vec<String>,
    },
}

/// `cerveza eip …`
#[derive(Debug, Subcommand)]
pub enum EipCommand {
    /// Give running hosts an Elastic IP (allocated once, tagged with the host).
    Attach {
        /// Hostnames.
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
    },
    /// Release hosts' Elastic IPs.
    Detach {
        /// Hostnames.
        #[arg(required = true, value_name = "HOST", add = ArgValueCompleter::new(crate::complete::complete_selection))]
        hosts: Vec<String>,
    },
}

/// `cerveza dns …`
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// List the published records of the product.
    List,
    /// Make the records match the live fleet: add missing, fix changed, remove stale.
    Sync {
        /// Print the changes, make none.
        #[arg(long)]
        dry_run: bool,
        /// Wait until the DNS servers serve the changes (Route53: each change INSYNC),
        /// at most --wait-timeout; exit 6 if they do not by then. LDAP changes are live
        /// once written.
        #[arg(long, conflicts_with = "dry_run")]
        wait: bool,
        /// Longest wait with --wait, e.g. 2m [default: the config's wait-timeout, 10m].
        #[arg(long, env = "CERVEZA_WAIT_TIMEOUT", value_name = "DURATION", value_parser = duration)]
        wait_timeout: Option<Duration>,
    },
}

/// `cerveza access …`
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Let USER into the hosts PATTERN names.
    Grant {
        /// The user (uid).
        user: String,
        /// host.zone, host.region, host.*, group*.zone, group*.region, group*.*, *.zone, *.region or *.
        pattern: String,
    },
    /// Take a grant back.
    Revoke {
        /// The user (uid).
        user: String,
        /// The grant, as given to `grant`.
        pattern: String,
    },
    /// Users and their grants.
    List {
        /// Only this user.
        user: Option<String>,
    },
    /// Whether USER may log into HOST, decided by LDAP with the host's own pam filter.
    Check {
        /// The user (uid).
        user: String,
        /// The host.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_host))]
        host: String,
        /// Its zone, for a host cerveza does not know.
        #[arg(long, value_name = "ZONE", add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Option<String>,
    },
    /// Add or remove directory users (for the lab and small teams without other tooling).
    ///
    /// A grant needs a user: `uid=<user>,ou=people,<base>` with `account` and
    /// `posixAccount`, as the hosts' nslcd reads it.
    User {
        #[command(subcommand)]
        command: AccessUserCommand,
    },
    /// Print a host's pam filter.
    Filter {
        /// The host.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_host))]
        host: String,
        /// Its zone, for a host cerveza does not know.
        #[arg(long, value_name = "ZONE", add = ArgValueCompleter::new(crate::complete::complete_zone))]
        zone: Option<String>,
    },
}

/// `cerveza access user …`
#[derive(Debug, Subcommand)]
pub enum AccessUserCommand {
    /// Add a POSIX user under ou=people (`account` + `posixAccount`).
    Add {
        /// The user (uid): a-z, 0-9, '_', '.', '-', starting with a letter or '_'.
        user: String,
        /// Full name (cn) [default: the user].
        #[arg(long, value_name = "TEXT")]
        name: Option<String>,
        /// uidNumber [default: the next free one from 10000].
        #[arg(long, value_name = "N")]
        uid_number: Option<u32>,
        /// gidNumber.
        #[arg(long, value_name = "N", default_value_t = 100)]
        gid_number: u32,
        /// homeDirectory [default: /home/USER].
        #[arg(long, value_name = "DIR")]
        home: Option<String>,
        /// loginShell.
        #[arg(long, value_name = "PATH")]
        shell: Option<String>,
    },
    /// Remove a user and every grant they have.
    Remove {
        /// The user (uid).
        user: String,
    },
}

/// `cerveza fleet …`
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Write the fleet as it is (registry and instances) as a fleet file, to stdout.
    ///
    /// Hosts of one name stem, profile and state share an entry, with the zones they
    /// are in; `cerveza plan` of the result changes nothing. Refused while a region or
    /// the registry does not answer (exit 5): a partial file would prune the rest.
    Export,
    /// Print the JSON Schema of fleet files or of profiles, for editors.
    ///
    /// With the YAML language server, start a file with
    /// `# yaml-language-server: $schema=<path to the schema>` and declare the tags
    /// (`yaml.customTags: ["!Fleet mapping", "!InstanceProfile mapping",
    /// "!VolumeProfile mapping", "!InstanceAws mapping"]`).
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value = "fleet")]
        kind: SchemaKind,
    },
}

/// Which JSON Schema `fleet schema` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemaKind {
    /// Fleet files (`--- !Fleet`).
    Fleet,
    /// Instance and volume profiles.
    Profiles,
}

/// `cerveza profiles …`
#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List every instance and volume profile.
    List,
    /// Show one profile with `extends:` resolved.
    Show {
        /// Profile name.
        #[arg(add = ArgValueCompleter::new(crate::complete::complete_any_profile))]
        name: String,
    },
    /// Validate every profile file and report every problem with file:line:column.
    Check,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command path below `cmd`, with its command.
    fn walk(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let p = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            out.push((p.clone(), sub.clone()));
            walk(sub, &p, out);
        }
    }

    #[test]
    fn every_command_ends_its_help_with_examples() {
        // Pinned width, and env values hidden: the snapshot must not depend on the
        // terminal or on CERVEZA_* variables set where the tests run.
        fn hide_env(cmd: clap::Command) -> clap::Command {
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_owned())
                .collect();
            let mut cmd = cmd.mut_args(|a| a.hide_env_values(true));
            for n in names {
                cmd = cmd.mut_subcommand(&n, hide_env);
            }
            cmd
        }
        let mut root = hide_env(command().term_width(100));
        root.build();
        let mut all = Vec::new();
        walk(&root, "", &mut all);
        assert!(all.len() > 40, "{}", all.len());
        let mut text = String::new();
        for (path, mut cmd) in all {
            let examples = examples(&path).unwrap_or_else(|| panic!("`{path}` has no examples"));
            assert!((1..=3).contains(&examples.len()), "{path}");
            let help = cmd.render_long_help().to_string();
            let tail: Vec<&str> = help.trim_end().lines().rev().take(examples.len()).collect();
            for e in examples {
                assert!(
                    e.starts_with("cerveza ") || e.contains("cerveza"),
                    "{path}: {e}"
                );
                assert!(
                    tail.iter().any(|l| l.trim() == *e),
                    "{path}: help does not end with {e:?}:\n{help}"
                );
            }
            text.push_str(&format!("===== cerveza {path} --help\n{help}\n"));
        }
        // No example table entry for a command that does not exist.
        for (path, _) in EXAMPLES {
            assert!(
                text.contains(&format!("===== cerveza {path} --help\n")),
                "examples for unknown command {path}"
            );
        }
        insta::assert_snapshot!("help", text);
    }

    #[test]
    fn the_version_says_whether_the_test_hooks_are_in() {
        use clap::CommandFactory;
        let version = Cli::command().render_version();
        assert_eq!(
            version.contains("built with test-hooks"),
            cfg!(feature = "test-hooks"),
            "{version}"
        );
    }
}
