//! Every export for a fixed fleet: snapshots, and each output checked by the real tool.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cerveza_core::model::{Instance, InstanceState};
use cerveza_core::{tags, Product, Zone};
use cerveza_export::{generate, Fleet, Kind, Options};

fn inst(
    id: &str,
    host: &str,
    zone: &str,
    profile: &str,
    sgs: &[&str],
    private: &str,
    public: Option<&str>,
) -> Instance {
    let z = Zone::parse(zone).unwrap();
    Instance {
        state_reason: None,
        imds_v1: None,
        id: id.into(),
        region: z.region(),
        zone: Some(z),
        state: InstanceState::Running,
        instance_type: Some("t3.small".into()),
        image_id: Some("ami-a6f504cf".into()),
        private_ip: Some(private.into()),
        public_ip: public.map(Into::into),
        launch_time: Some(1_700_000_000),
        security_groups: sgs.iter().map(|s| (*s).to_owned()).collect(),
        tags: BTreeMap::from([
            (tags::PRODUCT.into(), "noc".into()),
            (tags::HOST.into(), host.into()),
            (tags::PROFILE.into(), profile.into()),
        ]),
    }
}

/// The instances of the test fleet, in the order a listing might give them.
fn instances() -> Vec<Instance> {
    let mut hostile = inst(
        "i-bad",
        "-oProxyCommand=touch /tmp/pwned",
        "us-east-1a",
        "Web",
        &["web"],
        "10.0.9.9",
        None,
    );
    hostile
        .tags
        .insert(tags::HOST.into(), "-oProxyCommand=touch /tmp/pwned".into());
    let instances = vec![
        inst(
            "i-0003",
            "web02",
            "us-east-1b",
            "Web",
            &["web"],
            "10.0.1.12",
            Some("54.0.0.12"),
        ),
        inst(
            "i-0001",
            "dev-mysql01",
            "us-east-1b",
            "Mysql",
            &["mysql", "dev"],
            "10.0.2.1",
            None,
        ),
        inst(
            "i-0002",
            "web01",
            "us-east-1a",
            "Web",
            &["web"],
            "10.0.1.11",
            Some("54.0.0.11"),
        ),
        inst(
            "i-0004",
            "demo01",
            "ap-southeast-1a",
            "UbuntuGeneric32Bit",
            &["dev \"quoted\"; x"],
            "10.1.0.5",
            Some("13.0.0.5"),
        ),
        hostile,
    ];
    instances
}

fn fleet() -> Fleet {
    let f = Fleet::new(&Product::parse("noc").unwrap(), &instances());
    assert_eq!(
        f.skipped.len(),
        1,
        "the hostile name tag is dropped: {:?}",
        f.skipped
    );
    f
}

fn opts() -> Options {
    Options {
        ssh_user: Some("ubuntu".into()),
        jump_host: Some("vpn.noc.public".into()),
        // The region's own gateway wins for its hosts.
        region_jump_hosts: [("ap-southeast-1".to_owned(), "gw.ap.noc.public".to_owned())].into(),
        known_hosts: Some("/home/ops/.local/state/cerveza/known_hosts".into()),
        ..Options::default()
    }
}

fn text(kind: Kind) -> String {
    generate(kind, &fleet(), &opts())
        .unwrap()
        .into_iter()
        .map(|f| format!("==> {} <==\n{}", f.name, f.content))
        .collect()
}

#[test]
fn snapshots() {
    insta::assert_snapshot!("ssh_config", text(Kind::SshConfig));
    insta::assert_snapshot!("hosts", text(Kind::Hosts));
    insta::assert_snapshot!("ganglia", text(Kind::Ganglia));
    insta::assert_snapshot!("nagios", text(Kind::Nagios));
    insta::assert_snapshot!("prometheus", text(Kind::Prometheus));
    insta::assert_snapshot!("ansible", text(Kind::Ansible));
}

#[test]
fn output_does_not_depend_on_input_order() {
    let f = fleet();
    // The instances as another listing might order them, and the hosts of a fleet
    // built by hand in another order.
    let mut listed = instances();
    listed.reverse();
    listed.rotate_left(2);
    let relisted = Fleet::new(&f.product, &listed);
    let mut by_hand = fleet();
    by_hand.hosts.reverse();
    for kind in [
        Kind::SshConfig,
        Kind::Hosts,
        Kind::Ganglia,
        Kind::Nagios,
        Kind::Prometheus,
        Kind::Ansible,
    ] {
        let want = generate(kind, &f, &opts()).unwrap();
        assert_eq!(
            generate(kind, &relisted, &opts()).unwrap(),
            want,
            "{kind:?}"
        );
        assert_eq!(generate(kind, &by_hand, &opts()).unwrap(), want, "{kind:?}");
    }
}

#[test]
fn ganglia_ports_are_stable_and_explicit_ones_win() {
    let o = cerveza_export::ganglia::Options::default();
    let some = cerveza_export::ganglia_ports(&["dev".into(), "mysql".into()], &o).unwrap();
    let more = cerveza_export::ganglia_ports(
        &[
            "a-new-one".into(),
            "dev".into(),
            "mysql".into(),
            "web".into(),
        ],
        &o,
    )
    .unwrap();
    assert_eq!(
        some["dev"], more["dev"],
        "adding clusters does not move others"
    );
    assert_eq!(some["mysql"], more["mysql"]);
    assert!(more.values().all(|p| (8630..8730).contains(p)));
    let pinned = cerveza_export::ganglia::Options {
        ports: BTreeMap::from([("dev".into(), 8630), ("mysql".into(), 8631)]),
        ..o
    };
    let p = cerveza_export::ganglia_ports(&["dev".into(), "mysql".into()], &pinned).unwrap();
    assert_eq!(
        (p["dev"], p["mysql"]),
        (8630, 8631),
        "the paper's dev 8630, mysql 8631"
    );
}

#[test]
fn bad_options_are_refused() {
    let o = Options {
        ssh_user: Some("bad user".into()),
        ..Options::default()
    };
    assert!(generate(Kind::SshConfig, &fleet(), &o)
        .unwrap_err()
        .to_string()
        .contains("one word"));
}

fn write_all(dir: &Path, kind: Kind) -> Vec<std::path::PathBuf> {
    generate(kind, &fleet(), &opts())
        .unwrap()
        .into_iter()
        .map(|f| {
            let p = dir.join(&f.name);
            std::fs::write(&p, f.content).unwrap();
            p
        })
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/bootstrap installs the tools)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn ssh_reads_the_ssh_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = &write_all(dir.path(), Kind::SshConfig)[0];
    for name in ["web01", "web01.noc.private"] {
        let g = run(Command::new("ssh").args(["-G", "-F"]).arg(file).arg(name));
        assert!(g.contains("hostname 10.0.1.11\n"), "{g}");
        assert!(
            g.contains("user ubuntu\n") && g.contains("proxyjump vpn.noc.public\n"),
            "{g}"
        );
    }
}

#[test]
fn nagios_accepts_the_objects() {
    let dir = tempfile::tempdir().unwrap();
    let objects = &write_all(dir.path(), Kind::Nagios)[0];
    let d = dir.path().display();
    // The site's own commands (Debian ships them with monitoring-plugins).
    std::fs::write(
        dir.path().join("site-commands.cfg"),
        "define command {\n    command_name check-host-alive\n    command_line /bin/true\n}\ndefine command {\n    command_name check_ping\n    command_line /bin/true $ARG1$ $ARG2$\n}\ndefine command {\n    command_name check_ssh\n    command_line /bin/true\n}\n",
    )
    .unwrap();
    let cfg = format!(
        "log_file={d}/nagios.log\ncfg_file=/etc/nagios4/objects/commands.cfg\ncfg_file={d}/site-commands.cfg\ncfg_file=/etc/nagios4/objects/timeperiods.cfg\ncfg_file=/etc/nagios4/objects/templates.cfg\ncfg_file=/etc/nagios4/objects/contacts.cfg\ncfg_file={}\ncheck_result_path={d}\nlock_file={d}/nagios.lock\ntemp_file={d}/nagios.tmp\nstatus_file={d}/status.dat\nobject_cache_file={d}/objects.cache\nprecached_object_file={d}/objects.precache\nnagios_user=root\nnagios_group=root\n",
        objects.display()
    );
    std::fs::write(dir.path().join("nagios.cfg"), cfg).unwrap();
    let out = run(Command::new("nagios4")
        .arg("-v")
        .arg(dir.path().join("nagios.cfg")));
    assert!(out.contains("Total Errors:   0"), "{out}");
    assert!(out.contains("Checked 4 hosts"), "{out}");
}

#[test]
fn gmond_and_gmetad_accept_their_configs() {
    let dir = tempfile::tempdir().unwrap();
    for f in write_all(dir.path(), Kind::Ganglia) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("gmond") {
            // -b parses the configuration and computes its bandwidth, then exits.
            let out = run(Command::new("gmond").arg("-c").arg(&f).arg("-b"));
            assert!(!out.to_lowercase().contains("error"), "{name}: {out}");
        }
    }
    let gmetad = std::fs::read_to_string(dir.path().join("gmetad.conf")).unwrap();
    assert!(
        gmetad.contains("data_source \"web\" 127.0.0.1:"),
        "{gmetad}"
    );
}

/// Kills a child process when dropped (a failed assertion leaves no gmond behind).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one collector gmond and one host gmond from the export, the host sending to
/// 127.0.0.2 (not the loopback address gmetad polls on), as a real host sends to the
/// management box's private address. Returns the collector's XML (what gmetad reads)
/// once it lists a host of the cluster, or what it served at the deadline.
fn collector_after_a_host_reported(listen: &str, wait: std::time::Duration) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut o = opts();
    o.ganglia.ports = BTreeMap::from([("web".to_owned(), port), ("dev".to_owned(), free_port())]);
    o.ganglia.collector = Some("127.0.0.2".into());
    o.ganglia.listen = listen.into();
    let files = generate(Kind::Ganglia, &fleet(), &o).unwrap();
    let write = |name: &str| {
        let f = files.iter().find(|f| f.name == name).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &f.content).unwrap();
        path
    };
    let gmond = |conf: &Path| {
        Reaped(
            Command::new("gmond")
                .arg("-f")
                .arg("-c")
                .arg(conf)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("gmond: {e} (scripts/bootstrap installs it)")),
        )
    };
    let _collector = gmond(&write("gmond-web.conf"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _host = gmond(&write("gmond-client-web.conf"));
    let deadline = std::time::Instant::now() + wait;
    let mut xml = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            xml.clear();
            let _ = std::io::Read::read_to_string(&mut c, &mut xml);
            // The host's heartbeat makes it a HOST with the time its gmond started.
            if xml.contains("<HOST ") && xml.contains("GMOND_STARTED=\"") {
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    xml
}

#[test]
fn a_host_gmond_reaches_the_collector_at_the_address_hosts_send_to() {
    let xml =
        collector_after_a_host_reported(&opts().ganglia.listen, std::time::Duration::from_secs(30));
    assert!(
        xml.contains("<CLUSTER NAME=\"web\"") && xml.contains("<HOST "),
        "no heartbeat from the host reached the collector:\n{xml}"
    );
    // What the export once wrote, a collector bound to loopback only, hears nothing:
    // the check above can fail.
    let xml = collector_after_a_host_reported("127.0.0.1", std::time::Duration::from_secs(4));
    assert!(
        xml.contains("<CLUSTER NAME=\"web\"") && !xml.contains("<HOST "),
        "the loopback-only collector answered and heard no host: {xml}"
    );
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn gmetad_runs_on_its_config() {
    // gmetad has no check mode: it exits at once on a config error and otherwise
    // runs, printing each data source it parsed. Run it for two seconds.
    let dir = tempfile::tempdir().unwrap();
    let rrds = dir.path().join("rrds");
    std::fs::create_dir(&rrds).unwrap();
    // gmetad drops to user nobody and insists that it owns the RRD directory.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    run(Command::new("chown").arg("nobody").arg(&rrds));
    let mut o = opts();
    o.ganglia.rrd_dir = rrds.display().to_string();
    o.ganglia.xml_port = free_port();
    o.ganglia.interactive_port = free_port();
    let files = generate(Kind::Ganglia, &fleet(), &o).unwrap();
    let conf = files.iter().find(|f| f.name == "gmetad.conf").unwrap();
    let path = dir.path().join("gmetad.conf");
    std::fs::write(&path, &conf.content).unwrap();
    let out = Command::new("timeout")
        .args(["2", "gmetad", "-d", "2", "-c"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("gmetad: {e} (scripts/bootstrap installs it)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(124),
        "gmetad stopped on its own: {text}\n{}",
        conf.content
    );
    let sources = conf.content.matches("\ndata_source ").count();
    assert!(sources >= 2, "{}", conf.content);
    assert_eq!(text.matches("] has 1 sources").count(), sources, "{text}");
    for cluster in ["web", "dev"] {
        assert!(
            text.contains(&format!("Source: [{cluster}, step 15] has 1 sources")),
            "{cluster}: {text}"
        );
    }
    assert!(
        text.contains(&format!("xml listening on port {}", o.ganglia.xml_port)),
        "{text}"
    );

    // The same check refuses a broken file.
    std::fs::write(&path, format!("{}\nbogus_directive 1\n", conf.content)).unwrap();
    let out = Command::new("timeout")
        .args(["2", "gmetad", "-d", "2", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn promtool_accepts_the_file_sd_targets() {
    let dir = tempfile::tempdir().unwrap();
    let targets = &write_all(dir.path(), Kind::Prometheus)[0];
    let cfg = format!(
        "scrape_configs:\n  - job_name: node\n    file_sd_configs:\n      - files: ['{}']\n",
        targets.display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), cfg).unwrap();
    let out = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml")));
    assert!(out.contains("SUCCESS"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(targets).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
}
