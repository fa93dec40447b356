use super::*;

const M: &str = "@@m0";

/// Script output for these files (path, text); `None` text is unreadable.
fn output(files: &[(&str, Option<&str>)], extra: &[&str]) -> String {
    let mut out = String::from("Welcome to Ubuntu\n");
    for (p, t) in files {
        match t {
            Some(t) => out.push_str(&format!("{M} file {p}\n{t}\n")),
            None => out.push_str(&format!("{M} unreadable {p}\n")),
        }
    }
    for e in extra {
        out.push_str(&format!("{M} {e}\n"));
    }
    out.push_str(&format!("{M} end\n"));
    out
}

fn host(files: &[(&str, Option<&str>)], extra: &[&str]) -> HostFiles {
    HostFiles::parse(&output(files, extra), M)
}

fn problems(check: Check, files: &[(&str, Option<&str>)]) -> Vec<String> {
    match judge(check, &host(files, &[])) {
        Verdict::Pass => Vec::new(),
        Verdict::Fail(p) => p,
        Verdict::Unknown(e) => panic!("unknown: {e}"),
    }
}

const GOOD_RESOLV: &str =
    "nameserver 10.0.0.2\nnameserver 10.1.0.2\noptions timeout:1 attempts:1\n";

#[test]
fn the_resolver_needs_two_nameservers_and_short_timeouts() {
    assert!(problems(Check::Resolver, &[("/etc/resolv.conf", Some(GOOD_RESOLV))]).is_empty());
    let p = problems(
        Check::Resolver,
        &[("/etc/resolv.conf", Some("nameserver 10.0.0.2\n"))],
    );
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("one nameserver (10.0.0.2)"));
    assert!(p[1].contains("timeout 5 s"));
    assert!(p[2].contains("2 attempts"));
    assert!(problems(Check::Resolver, &[])[0].contains("missing"));
}

#[test]
fn nsswitch_must_read_files_before_the_directory() {
    let good = "passwd: files ldap\ngroup: compat [NOTFOUND=return] ldap\nshadow: files\nhosts: dns files\n";
    assert!(problems(Check::Nsswitch, &[("/etc/nsswitch.conf", Some(good))]).is_empty());
    let bad = "passwd:  ldap files\ngroup: ldap\nshadow: files sss\n";
    let p = problems(Check::Nsswitch, &[("/etc/nsswitch.conf", Some(bad))]);
    assert_eq!(
        p,
        [
            "/etc/nsswitch.conf: `passwd: ldap files` asks ldap before local files",
            "/etc/nsswitch.conf: `group: ldap` never reads local files",
        ]
    );
}

const CERVEZA_NSLCD: &str =
    "uid nslcd\nuri ldaps://ldap.noc.private\nbind_timelimit 3\ntimelimit 5\n";

#[test]
fn login_timeouts_are_summed_against_login_grace_time() {
    // cerveza's own settings: 3 × (DNS 1×1×2 + 3 + 5) = 30 s < 120 s.
    let good = [
        ("/etc/resolv.conf", Some(GOOD_RESOLV)),
        ("/etc/nslcd.conf", Some(CERVEZA_NSLCD)),
    ];
    assert!(problems(Check::LoginTimeouts, &good).is_empty());
    // Debian's defaults for nslcd: no timelimit at all.
    let p = problems(
        Check::LoginTimeouts,
        &[("/etc/nslcd.conf", Some("uri ldap://10.0.0.5\n"))],
    );
    assert!(p[0].contains("no timelimit"), "{p:?}");
    // Long waits: 3 × (DNS 5×2×2 + 2 × 30 + 10) = 270 s ≥ 120 s; a drop-in sets 1m.
    let slow = "uri ldap://a.noc.private ldap://b.noc.private\nbind_timelimit 30\ntimelimit 10\n";
    let p = problems(
        Check::LoginTimeouts,
        &[
            (
                "/etc/resolv.conf",
                Some("nameserver 10.0.0.2\nnameserver 10.1.0.2\n"),
            ),
            ("/etc/nslcd.conf", Some(slow)),
            (
                "/etc/ssh/sshd_config",
                Some("Include /etc/ssh/sshd_config.d/*.conf\nLoginGraceTime 10m\n"),
            ),
            (
                "/etc/ssh/sshd_config.d/50-cloud.conf",
                Some("LoginGraceTime 1m\n"),
            ),
        ],
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].starts_with("a login can wait 270 s (3 lookups × (DNS 20 s + 2 URI(s) × bind_timelimit 30 s + timelimit 10 s) in /etc/nslcd.conf), not less than sshd's LoginGraceTime 60 s"), "{p:?}");
    // autofs without mount_wait waits as long as mount does.
    let p = problems(
        Check::LoginTimeouts,
        &[
            ("/etc/resolv.conf", Some(GOOD_RESOLV)),
            ("/etc/autofs.conf", Some("[ autofs ]\ntimeout = 300\n")),
        ],
    );
    assert!(p[0].contains("no mount_wait"), "{p:?}");
}

#[test]
fn sshd_times_and_the_first_value_win() {
    assert_eq!(sshd_seconds("120"), Some(120));
    assert_eq!(sshd_seconds("1m30s"), Some(90));
    assert_eq!(sshd_seconds("2M"), Some(120));
    assert_eq!(sshd_seconds("2x"), None);
    let h = host(
        &[(
            "/etc/ssh/sshd_config",
            Some("LoginGraceTime 30\nLoginGraceTime 90\nMatch User x\n"),
        )],
        &[],
    );
    assert_eq!(login_grace(&h), Ok(30));
    let h = host(
        &[(
            "/etc/ssh/sshd_config",
            Some("Match User x\n  LoginGraceTime 1\n"),
        )],
        &[],
    );
    assert_eq!(login_grace(&h), Ok(120));
}

#[test]
fn fstab_lines_that_can_stop_a_boot() {
    let good = "LABEL=cloudimg-rootfs / ext4 defaults 0 1\nLABEL=UEFI /boot/efi vfat umask=0077 0 1\n/dev/xvdb /mnt auto defaults,nofail 0 2\nproc /proc proc defaults 0 0\n/dev/xvdf /data ext4 noauto 0 0\n";
    assert!(problems(Check::Fstab, &[("/etc/fstab", Some(good))]).is_empty());
    let bad = "/dev/md0 /var/lib/mysql xfs defaults 0 2\nnfs.noc.private:/home /home nfs rw,_netdev 0 0\n";
    let p = problems(Check::Fstab, &[("/etc/fstab", Some(bad))]);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].contains("/dev/md0 on /var/lib/mysql without nofail"));
    assert!(p[1].contains("network filesystem nfs.noc.private:/home"));
}

#[test]
fn puppet_from_cron_not_as_a_daemon() {
    let cron = "# minute 17\n17,47 * * * * root /usr/bin/puppet agent --onetime\n";
    let h = host(&[("/etc/cron.d/cerveza-puppet", Some(cron))], &[]);
    let p = puppet(&h).unwrap();
    assert!(p.problems.is_empty());
    assert_eq!(p.minutes, BTreeSet::from([17, 47]));
    assert_eq!(judge(Check::Puppet, &h), Verdict::Pass);
    let h = host(
        &[("/etc/default/puppet", Some("START=yes\n"))],
        &["enabled puppet.service"],
    );
    let Verdict::Fail(p) = judge(Check::Puppet, &h) else {
        panic!()
    };
    assert_eq!(p.len(), 2);
    assert!(p[0].contains("puppet.service is enabled"));
    assert_eq!(cron_minutes("*/20"), Some(BTreeSet::from([0, 20, 40])));
    assert_eq!(cron_minutes("5-9/2"), Some(BTreeSet::from([5, 7, 9])));
    assert_eq!(cron_minutes("61"), None);
}

#[test]
fn puppet_minutes_of_a_group_are_spread_when_they_can_be() {
    let a = BTreeSet::from([3, 33]);
    let b = BTreeSet::from([10, 40]);
    fn hosts<'a>(a: &'a BTreeSet<u32>, second: &'a BTreeSet<u32>) -> Vec<PuppetHost<'a>> {
        vec![
            PuppetHost {
                host: "web01",
                group: "Web",
                minutes: a,
            },
            PuppetHost {
                host: "web02",
                group: "Web",
                minutes: second,
            },
            PuppetHost {
                host: "db01",
                group: "Mysql",
                minutes: a,
            },
        ]
    }
    assert!(puppet_spread(&hosts(&a, &b)).is_empty());
    let f = puppet_spread(&hosts(&a, &a));
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(f[0].subject, "web01");
    assert_eq!(
        f[0].problem,
        "runs puppet at minute 3 like web02 (2 hosts of Web fit in 30 minutes)"
    );
}

#[test]
fn updatedb_prunes_network_filesystems() {
    let good = "PRUNE_BIND_MOUNTS=\"yes\"\nPRUNEFS=\"NFS nfs nfs4 rpc_pipefs afs\"\n";
    assert!(problems(Check::Updatedb, &[("/etc/updatedb.conf", Some(good))]).is_empty());
    let p = problems(
        Check::Updatedb,
        &[("/etc/updatedb.conf", Some("PRUNEFS=\"proc nfs\"\n"))],
    );
    assert_eq!(
        p,
        ["/etc/updatedb.conf: PRUNEFS lacks nfs4: updatedb crawls those mounts"]
    );
}

#[test]
fn a_local_account_with_a_key_is_the_backdoor() {
    let h = host(
        &[(
            "/etc/passwd",
            Some("ubuntu:x:1000:1000::/home/ubuntu:/bin/bash\n"),
        )],
        &["key ubuntu"],
    );
    assert_eq!(judge(Check::LocalAccount, &h), Verdict::Pass);
    let h = host(
        &[("/etc/passwd", Some("root:x:0:0::/root:/bin/bash\n"))],
        &[],
    );
    assert!(matches!(judge(Check::LocalAccount, &h), Verdict::Fail(_)));
}

#[test]
fn unreadable_files_and_cut_off_output_are_never_a_pass() {
    let h = host(&[("/etc/nslcd.conf", None)], &[]);
    let Verdict::Unknown(why) = judge(Check::LoginTimeouts, &h) else {
        panic!()
    };
    assert!(why.contains("cannot read /etc/nslcd.conf"), "{why}");
    let cut =
        output(&[("/etc/resolv.conf", Some(GOOD_RESOLV))], &[]).replace(&format!("{M} end\n"), "");
    let h = HostFiles::parse(&cut, M);
    assert!(matches!(judge(Check::Resolver, &h), Verdict::Unknown(_)));
}

#[test]
fn a_file_cannot_forge_another_section() {
    // A marker without this run's nonce is text of the file it is in.
    let text = "nameserver 10.0.0.2\n@@other file /etc/fstab\n";
    let h = host(&[("/etc/resolv.conf", Some(text))], &[]);
    assert_eq!(h.state("/etc/fstab"), &FileState::Missing);
    assert_eq!(
        parse_resolver(h.text("/etc/resolv.conf").unwrap().unwrap())
            .nameservers
            .len(),
        1
    );
}

#[test]
fn the_script_reads_a_tree_under_a_root_prefix() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let write = |p: &str, t: &str| {
        let f = r.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, t).unwrap();
    };
    write("/etc/resolv.conf", GOOD_RESOLV);
    write(
        "/etc/cron.d/cerveza-puppet",
        "7,37 * * * * root puppet agent\n",
    );
    write(
        "/etc/ssh/sshd_config",
        "Include sshd_config.d/*.conf\nLoginGraceTime 2m\n",
    );
    write(
        "/etc/ssh/sshd_config.d/10-grace.conf",
        "LoginGraceTime 45\n",
    );
    write(
        "/etc/passwd",
        "ops:x:1000:1000::/home/ops:/bin/sh\nsvc:x:999:999::/home/svc:/usr/sbin/nologin\n",
    );
    write("/home/ops/.ssh/authorized_keys", "ssh-ed25519 AAAA ops\n");
    write("/home/svc/.ssh/authorized_keys", "ssh-ed25519 AAAA svc\n");
    write("/proc/mounts", MOUNTS_OK);
    write("/etc/cerveza/volumes/MysqlRaid10.conf", MYSQL_CONF);
    write(
        "/var/lib/cerveza/volumes/MysqlRaid10.status",
        "state=mounted\nsource=/dev/md127\n",
    );
    write(
        "/etc/systemd/system/multi-user.target.wants/puppet.service",
        "",
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(command(&r.display().to_string(), "@@t1"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let h = HostFiles::parse(&text, "@@t1");
    assert!(h.complete(), "{text}");
    assert_eq!(h.text("/etc/resolv.conf"), Ok(Some(GOOD_RESOLV)));
    assert_eq!(h.state("/etc/fstab"), &FileState::Missing);
    assert_eq!(h.keyed_users, ["ops"]);
    assert_eq!(
        h.enabled_units,
        BTreeSet::from(["puppet.service".to_owned()])
    );
    assert_eq!(puppet(&h).unwrap().minutes, BTreeSet::from([7, 37]));
    assert_eq!(login_grace(&h), Ok(45));
    assert_eq!(data_volumes(&h, Some(MYSQL_WANTED)), Ok(vec![]));
}

#[test]
fn the_command_is_one_line_of_safe_characters() {
    let c = command("/tmp/it's", "@@ab");
    assert!(!c.contains('\n'));
    assert!(c.ends_with(r"sh -s -- '/tmp/it'\''s' '@@ab'"), "{c}");
}

#[test]
fn uri_hosts() {
    assert_eq!(
        uri_host("ldaps://ldap1.noc.private:636/"),
        "ldap1.noc.private"
    );
    assert_eq!(uri_host("ldap://10.0.0.5"), "10.0.0.5");
    assert_eq!(uri_host("ldap://[fd00::5]:389"), "fd00::5");
}

const MYSQL_CONF: &str = "# cerveza: volume profile MysqlRaid10\nNAME='MysqlRaid10'\nLEVEL='10'\nMOUNT='/var/lib/mysql'\n";
const MOUNTS_OK: &str =
    "/dev/root / ext4 rw,relatime 0 0\n/dev/md127 /var/lib/mysql xfs rw,noatime 0 0\n";
const MYSQL_WANTED: &[WantedVolume<'static>] = &[WantedVolume {
    name: "MysqlRaid10",
    mount_point: "/var/lib/mysql",
}];

fn volume_problems(
    files: &[(&str, Option<&str>)],
    wanted: Option<&[WantedVolume<'_>]>,
) -> Result<Vec<String>, String> {
    data_volumes(&host(files, &[]), wanted)
}

#[test]
fn data_volumes_are_mounted_from_what_their_assembler_made() {
    let conf = ("/etc/cerveza/volumes/MysqlRaid10.conf", Some(MYSQL_CONF));
    let mounted = (
        "/var/lib/cerveza/volumes/MysqlRaid10.status",
        Some("state=mounted\nmount=/var/lib/mysql\nsource=/dev/md127\nmessage=mounted\ntime=2026-12-04T10:00:00Z\n"),
    );
    let ok = [conf, mounted, ("/proc/mounts", Some(MOUNTS_OK))];
    assert_eq!(volume_problems(&ok, Some(MYSQL_WANTED)), Ok(vec![]));
    assert_eq!(
        volume_problems(&ok, None),
        Ok(vec![]),
        "from the host's own settings"
    );
    assert_eq!(judge(Check::DataVolumes, &host(&ok, &[])), Verdict::Pass);

    // Not mounted, and the assembler said why: data goes to the root disk.
    let failed = (
        "/var/lib/cerveza/volumes/MysqlRaid10.status",
        Some("state=failed\nmount=/var/lib/mysql\nsource=\nmessage=devices missing after 300s: /dev/sdi\ntime=2026-12-04T10:05:00Z\n"),
    );
    let root_only = ("/proc/mounts", Some("/dev/root / ext4 rw 0 0\n"));
    assert_eq!(
        volume_problems(&[conf, failed, root_only], Some(MYSQL_WANTED)),
        Ok(vec!["volume profile MysqlRaid10 is not mounted on /var/lib/mysql: what is written there goes to the root disk; its assembler says failed at 2026-12-04T10:05:00Z: devices missing after 300s: /dev/sdi".to_owned()])
    );
    // The same host judged without the profiles finds it too.
    assert_eq!(
        volume_problems(&[conf, failed, root_only], None)
            .unwrap()
            .len(),
        1
    );

    // Mounted by someone else from another device.
    let other = (
        "/proc/mounts",
        Some("/dev/root / ext4 rw 0 0\n/dev/nvme5n1 /var/lib/mysql ext4 rw 0 0\n"),
    );
    assert_eq!(
        volume_problems(&[conf, mounted, other], Some(MYSQL_WANTED)),
        Ok(vec!["/var/lib/mysql is mounted from /dev/nvme5n1, not from what the assembler of volume profile MysqlRaid10 mounted (/dev/md127); its assembler says mounted at 2026-12-04T10:00:00Z: mounted".to_owned()])
    );

    // A host launched without the volume part: nothing installed, nothing mounted.
    let p = volume_problems(&[root_only], Some(MYSQL_WANTED)).unwrap();
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(
        p[0].starts_with("/etc/cerveza/volumes/MysqlRaid10.conf is missing"),
        "{p:#?}"
    );
    assert!(p[1].contains("MysqlRaid10.status does not exist"), "{p:#?}");
    // ... and judged without the profiles it has nothing to check.
    assert_eq!(volume_problems(&[root_only], None), Ok(vec![]));

    // A profile whose mount point changed after launch.
    let moved = [WantedVolume {
        name: "MysqlRaid10",
        mount_point: "/srv/mysql",
    }];
    let p = volume_problems(&ok, Some(&moved)).unwrap();
    assert!(
        p[0].contains("mounts at /var/lib/mysql, the profile at /srv/mysql"),
        "{p:#?}"
    );
    assert!(p[1].contains("not mounted on /srv/mysql"), "{p:#?}");

    // What cannot be read is never a pass.
    assert!(volume_problems(&[conf, mounted, ("/proc/mounts", None)], Some(MYSQL_WANTED)).is_err());
    assert!(volume_problems(&[conf, mounted], Some(MYSQL_WANTED)).is_err());
    let unreadable = ("/var/lib/cerveza/volumes/MysqlRaid10.status", None);
    let e = volume_problems(
        &[conf, unreadable, ("/proc/mounts", Some(MOUNTS_OK))],
        Some(MYSQL_WANTED),
    )
    .unwrap_err();
    assert!(
        e.contains("cannot read /var/lib/cerveza/volumes/MysqlRaid10.status"),
        "{e}"
    );
    // A host with no volume profile has nothing to check, whatever it mounts.
    assert_eq!(volume_problems(&[], Some(&[])), Ok(vec![]));
}

/// A tree with a readable resolv.conf and a mode-000 nslcd.conf, for the script run
/// as a user who is not root.
fn tree_with_an_unreadable_file() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let write = |p: &str, t: &str, mode: u32| {
        let f = r.join(p.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, t).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    write("/etc/resolv.conf", GOOD_RESOLV, 0o644);
    write("/etc/nslcd.conf", NSLCD_UNREADABLE, 0o000);
    for dir in ["", "/etc"] {
        std::fs::set_permissions(
            r.join(dir.trim_start_matches('/')),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    root
}

const NSLCD_UNREADABLE: &str = "uri ldaps://ldap.noc.private\n";

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap()
}

/// Runs the real script over `root` as a user who is not root (as root: `nobody`,
/// through util-linux setpriv) and parses what it printed.
fn run_script(root: &std::path::Path, sudoers: Option<&std::path::Path>) -> (HostFiles, String) {
    let line = command(&root.display().to_string(), "@@t2");
    let mut cmd = match (is_root(), sudoers) {
        (true, None) => {
            let mut c = std::process::Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                &line,
            ]);
            c
        }
        // The real sudo, with a sudoers file of the test's own bound over /etc/sudoers in
        // a private mount namespace: the machine's own configuration is never touched.
        (true, Some(sudoers)) => {
            let mut c = std::process::Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg(
                    "mount --bind \"$1\" /etc/sudoers && exec setpriv --reuid=65534 \
                     --regid=65534 --clear-groups sh -c \"$2\"",
                )
                .args(["sh"])
                .arg(sudoers)
                .arg(&line);
            c
        }
        (false, _) => {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &line]);
            c
        }
    };
    let out = cmd.current_dir("/").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    (HostFiles::parse(&text, "@@t2"), text)
}

#[test]
fn the_real_script_says_unreadable_for_a_file_it_cannot_read_and_judging_never_passes_it() {
    // A mode-000 file read by a user who is not root (root reads anything), and for whom
    // `sudo -n` needs a password (or there is no sudo).
    let root = tree_with_an_unreadable_file();
    let (h, text) = run_script(root.path(), None);
    assert!(h.complete(), "{text}");
    assert_eq!(h.state("/etc/nslcd.conf"), &FileState::Unreadable, "{text}");
    assert_eq!(h.text("/etc/resolv.conf"), Ok(Some(GOOD_RESOLV)));
    let Verdict::Unknown(why) = judge(Check::LoginTimeouts, &h) else {
        panic!("an unreadable nslcd.conf was judged: {text}")
    };
    assert_eq!(
        why,
        "cannot read /etc/nslcd.conf (log in as root, or give the ssh user passwordless sudo)"
    );
}

#[test]
fn the_real_script_reads_what_the_user_cannot_through_passwordless_sudo() {
    // Needs root (to be `nobody` with a sudoers of the test's own), sudo and unshare:
    // scripts/bootstrap installs sudo, and CI runs as root.
    let have = |p: &str| {
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(is_root() && have("sudo") && have("unshare")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test: it needs root, sudo and unshare"
        );
        eprintln!("skipped: needs root, sudo and unshare");
        return;
    }
    use std::os::unix::fs::PermissionsExt as _;
    let root = tree_with_an_unreadable_file();
    let dir = tempfile::tempdir().unwrap();
    let sudoers = dir.path().join("sudoers");
    std::fs::write(&sudoers, "nobody ALL=(root) NOPASSWD: ALL\n").unwrap();
    std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
    let (h, text) = run_script(root.path(), Some(&sudoers));
    assert!(h.complete(), "{text}");
    assert_eq!(
        h.text("/etc/nslcd.conf"),
        Ok(Some(NSLCD_UNREADABLE)),
        "{text}"
    );
    // Read, so judged: no "could not check".
    assert!(
        !matches!(judge(Check::LoginTimeouts, &h), Verdict::Unknown(_)),
        "{text}"
    );
}
