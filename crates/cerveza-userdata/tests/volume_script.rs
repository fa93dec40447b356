//! The volume boothook and its assembler: shellcheck, what the boothook installs, and the
//! assembler's decisions on real block devices (loop devices) seen the way a Nitro
//! instance sees EBS volumes: as `nvmeXn1` names only, in any order, with no `/dev/sdf`
//! link, each naming its attachment slot in its NVMe controller's identify data. The test
//! seam is the settings file (the device directory holds links to the loop devices) and
//! stubs of `nvme`, mdadm, blkid, mkfs and mount, since neither NVMe nor the md driver
//! is available where the tests run. The stubs keep state in files, like the disks would.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cerveza_core::profile::{ProfileSet, VolumeProfile};
use cerveza_userdata::volumes;

fn mysql() -> VolumeProfile {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/profiles");
    let set = ProfileSet::load_dir(&dir).unwrap();
    set.volume("MysqlRaid10").unwrap().clone()
}

fn shellcheck(body: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("script.sh");
    std::fs::write(&file, body).unwrap();
    let out = Command::new("shellcheck")
        .args(["-s", "sh"])
        .arg(&file)
        .output()
        .expect("shellcheck (scripts/bootstrap installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn shellcheck_passes_on_the_boothook_and_the_assembler() {
    // cloud-init strips the #cloud-boothook line before running the script.
    let boothook = volumes::script(&mysql());
    shellcheck(boothook.split_once('\n').unwrap().1);
    shellcheck(volumes::ASSEMBLER);
}

/// The files the boothook writes, read back from its heredocs: exactly the settings,
/// the assembler, the unit and the udev rule, and it starts the unit.
#[test]
fn the_boothook_installs_the_assembler_its_settings_the_unit_and_the_udev_rule() {
    let vp = mysql();
    let boothook = volumes::script(&vp);
    let mut written = std::collections::BTreeMap::new();
    let mut lines = boothook.lines();
    while let Some(line) = lines.next() {
        if let Some(rest) = line.strip_prefix("cat > ") {
            let (path, end) = rest.split_once(" <<'").unwrap();
            let end = end.trim_end_matches('\'');
            let mut body = String::new();
            for l in lines.by_ref() {
                if l == end {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            written.insert(path.to_owned(), body);
        }
    }
    assert_eq!(
        written.get("/etc/cerveza/volumes/MysqlRaid10.conf"),
        Some(&volumes::settings(&vp))
    );
    assert_eq!(
        written.get(volumes::ASSEMBLER_PATH).map(String::as_str),
        Some(volumes::ASSEMBLER)
    );
    assert_eq!(
        written.get(volumes::UNIT_PATH).map(String::as_str),
        Some(volumes::UNIT)
    );
    assert_eq!(
        written.get("/etc/udev/rules.d/90-cerveza-volumes-MysqlRaid10.rules"),
        Some(&volumes::udev_rule(&vp))
    );
    assert_eq!(written.len(), 4, "{written:?}");
    assert!(
        boothook.contains("systemctl --no-block start cerveza-volumes@MysqlRaid10.service"),
        "{boothook}"
    );
    assert!(volumes::udev_rule(&vp)
        .contains("ENV{SYSTEMD_WANTS}+=\"cerveza-volumes@MysqlRaid10.service\""));
    let sh = Command::new("sh")
        .arg("-n")
        .arg("-c")
        .arg(&boothook)
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
}

const STUB: &str = r#"#!/bin/sh
# Stubs of the storage tools, keeping state under $STATE.
tool=$(basename "$0")
echo "$tool $*" >> "$STATE/calls"
case "$tool" in
  nvme)
    # nvme id-ctrl --raw-binary DEV: 4096 bytes of identify data, with the model at
    # byte 24 and the attachment's device name at byte 3072, as EBS fills them.
    [ "$1" = id-ctrl ] && [ "$2" = --raw-binary ] || exit 1
    line=$(awk -v d="$3" '$1 == d' "$STATE/ids")
    [ -n "$line" ] || exit 1
    model=$(echo "$line" | cut -d' ' -f2 | tr _ ' ')
    bdev=$(echo "$line" | cut -d' ' -f3)
    head -c 24 /dev/zero; printf '%-40s' "$model"; head -c 3008 /dev/zero
    printf '%-32s' "$bdev"; head -c 992 /dev/zero
    exit 0 ;;
  blkid) dev=$(eval echo "\${$#}"); grep -qx "$dev" "$STATE/fs" 2>/dev/null && echo ext4; exit 0 ;;
  mdadm)
    case "$1" in
      --examine) grep -qx "$2" "$STATE/members" 2>/dev/null; exit $? ;;
      --assemble) md=$2; shift 2
        for d in "$@"; do grep -qx "$d" "$STATE/members" 2>/dev/null || exit 1; done
        ln -sf "$SPARE" "$md"; exit 0 ;;
      --create) md=$2; shift 2
        for a in "$@"; do case "$a" in /dev/*) echo "$a" >> "$STATE/members";; esac; done
        ln -sf "$SPARE" "$md"; exit 0 ;;
    esac ;;
  mkfs.*) echo "$1" >> "$STATE/fs"; exit 0 ;;
  mountpoint) grep -q " $2 " "$STATE/mounts" 2>/dev/null; exit $? ;;
  mount) echo "$(readlink -f "$3") $4 xfs $2 0 0" >> "$STATE/mounts"; exit 0 ;;
  logger|vgs|vgchange|pvcreate|vgcreate|lvcreate) exit 0 ;;
esac
exit 0
"#;

/// Loop devices, stub tools, a device directory, and a way to run the assembler as the
/// unit would.
struct Rig {
    dir: tempfile::TempDir,
    loops: Vec<String>,
    /// Which stub tools exist.
    with_nvme: bool,
}

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut loops = Vec::new();
        for i in 0..7 {
            let img = dir.path().join(format!("disk{i}.img"));
            std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
            let out = Command::new("losetup")
                .args(["-f", "--show"])
                .arg(&img)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "losetup: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            loops.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
        }
        for d in ["bin", "state", "md", "dev", "mnt"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let stub = dir.path().join("bin/stub");
        std::fs::write(&stub, STUB).unwrap();
        Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        for t in [
            "nvme",
            "blkid",
            "mdadm",
            "mkfs.xfs",
            "mountpoint",
            "mount",
            "logger",
            "vgs",
            "vgchange",
            "pvcreate",
            "vgcreate",
            "lvcreate",
        ] {
            std::os::unix::fs::symlink(&stub, dir.path().join("bin").join(t)).unwrap();
        }
        std::fs::write(dir.path().join("state/ids"), "").unwrap();
        Self {
            dir,
            loops,
            with_nvme: true,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.path("state").join(name)).unwrap_or_default()
    }

    /// Loop device `i` appears as `dev/<name>`; an NVMe name also gets its identify
    /// data (`model` with `_` for spaces, and the attachment's device name).
    fn attach(&self, i: usize, name: &str, nvme: Option<(&str, &str)>) {
        let link = self.path("dev").join(name);
        std::os::unix::fs::symlink(&self.loops[i], &link).unwrap();
        if let Some((model, bdev)) = nvme {
            let mut ids = self.state("ids");
            ids.push_str(&format!("{} {model} {bdev}\n", link.display()));
            std::fs::write(self.path("state/ids"), ids).unwrap();
        }
    }

    /// The four data volumes of MysqlRaid10 as a Nitro instance shows them: NVMe names
    /// in another order than their slots (f, g, h, i), beside the root volume and an
    /// instance-store disk whose vendor data looks like a slot but is no EBS volume.
    fn attach_nitro(&self, which: &[usize]) {
        const EBS: &str = "Amazon_Elastic_Block_Store";
        let slots = ["/dev/sdh", "sdf", "/dev/sdi", "sdg"];
        for &i in which {
            self.attach(i, &format!("nvme{}n1", i + 1), Some((EBS, slots[i])));
        }
    }

    fn root_and_instance_store(&self) {
        self.attach(
            4,
            "nvme0n1",
            Some(("Amazon_Elastic_Block_Store", "/dev/sda1")),
        );
        self.attach(
            5,
            "nvme9n1",
            Some(("Amazon_EC2_NVMe_Instance_Storage", "sdf")),
        );
    }

    /// The loop device EBS would show at slot `s` in [`Rig::attach_nitro`].
    fn at_slot(&self, s: char) -> &str {
        let i = match s {
            'h' => 0,
            'f' => 1,
            'i' => 2,
            'g' => 3,
            _ => unreachable!(),
        };
        &self.loops[i]
    }

    fn settings(&self, wait: u32) -> PathBuf {
        let mut text = volumes::settings(&mysql()).replace("WAIT='300'", &format!("WAIT='{wait}'"));
        // Every path the assembler touches, moved into the rig.
        for (key, on_host, in_rig) in [
            ("MOUNT", "/var/lib/mysql", "mnt"),
            (
                "STATUS",
                "/var/lib/cerveza/volumes/MysqlRaid10.status",
                "state/status",
            ),
            ("DEVDIR", "/dev", "dev"),
            ("MDDIR", "/dev/md", "md"),
            ("MOUNTS", "/proc/mounts", "state/mounts"),
        ] {
            let from = format!("{key}='{on_host}'");
            assert!(text.contains(&from), "{from} in {text}");
            text = text.replace(&from, &format!("{key}='{}'", self.path(in_rig).display()));
        }
        let file = self.path("settings.conf");
        std::fs::write(&file, text).unwrap();
        file
    }

    fn command(&self, wait: u32) -> Command {
        let script = self.path("volumes.sh");
        std::fs::write(&script, volumes::ASSEMBLER).unwrap();
        if !self.with_nvme {
            let _ = std::fs::remove_file(self.path("bin/nvme"));
        }
        // /usr/sbin and /sbin are left out so no real nvme or mdadm can answer.
        let path = format!("{}:/usr/bin:/bin", self.path("bin").display());
        let mut c = Command::new("/bin/sh");
        c.arg(&script)
            .arg(self.settings(wait))
            .env("PATH", path)
            .env("STATE", self.path("state"))
            .env("SPARE", &self.loops[6]);
        c
    }

    /// Runs the assembler once, as a boot does: the md device and the mount of a
    /// previous boot are gone.
    fn boot(&self, wait: u32) -> Output {
        for e in std::fs::read_dir(self.path("md")).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let _ = std::fs::remove_file(self.path("state/mounts"));
        std::fs::write(self.path("state/calls"), "").unwrap();
        self.command(wait).output().unwrap()
    }

    fn status(&self) -> String {
        self.state("status")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for l in &self.loops {
            let _ = Command::new("losetup").arg("-d").arg(l).status();
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn nvme_only_devices_are_found_by_their_slot_created_once_and_assembled_after() {
    let rig = Rig::new();
    rig.root_and_instance_store();
    rig.attach_nitro(&[0, 1, 2, 3]);
    let out = rig.boot(5);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = rig.state("calls");
    let create = calls
        .lines()
        .find(|l| l.starts_with("mdadm --create"))
        .unwrap_or_else(|| panic!("no mdadm --create: {calls}\n{}", stderr(&out)));
    let members: Vec<&str> = create
        .split(' ')
        .filter(|w| w.starts_with("/dev/"))
        .collect();
    assert_eq!(
        members,
        ['f', 'g', 'h', 'i'].map(|s| rig.at_slot(s)),
        "the members in the profile's device order, by slot, never the root or instance store: {create}"
    );
    assert_eq!(rig.state("fs").lines().count(), 1, "one mkfs, on the array");
    assert!(calls.contains("mount -o noatime,nofail"), "{calls}");
    let status = rig.status();
    assert!(status.contains("state=mounted\n"), "{status}");
    assert!(
        status.contains(&format!("source={}\n", rig.loops[6])),
        "the source as the mounts table shows it: {status}"
    );

    let out = rig.boot(5);
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = rig.state("calls");
    assert!(calls.contains("mdadm --assemble"), "{calls}");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs"),
        "a later boot never creates or formats: {calls}"
    );
    assert!(calls.contains("mount -o noatime,nofail"), "{calls}");
    assert!(rig.status().contains("state=mounted\n"));
}

#[test]
fn an_nvme_disk_that_is_no_ebs_volume_is_never_taken_for_one() {
    // The volume at sdf is not attached; the instance-store disk's vendor data says
    // "sdf". Taking it would build the array on a disk that vanishes at stop.
    let rig = Rig::new();
    rig.root_and_instance_store();
    rig.attach_nitro(&[0, 2, 3]);
    let out = rig.boot(1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let status = rig.status();
    assert!(status.contains("state=failed\n"), "{status}");
    assert!(
        status.contains("devices missing after 1s: /dev/sdf;"),
        "{status}"
    );
    let calls = rig.state("calls");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs"),
        "{calls}"
    );
}

#[test]
fn xen_device_names_still_work() {
    let rig = Rig::new();
    for (i, n) in ["xvdf", "xvdg", "xvdh", "xvdi"].iter().enumerate() {
        rig.attach(i, n, None);
    }
    let out = rig.boot(5);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(rig.state("calls").contains("mdadm --create"));
    assert!(rig.status().contains("state=mounted\n"), "{}", rig.status());
}

#[test]
fn a_device_that_holds_data_is_never_formatted_and_the_unit_fails() {
    let rig = Rig::new();
    rig.attach_nitro(&[0, 1, 2, 3]);
    // One of the four devices already holds a filesystem (say, attached by mistake).
    std::fs::write(rig.path("state/fs"), format!("{}\n", rig.at_slot('h'))).unwrap();
    let out = rig.boot(5);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the unit fails: {}",
        stderr(&out)
    );
    let calls = rig.state("calls");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs") && !calls.contains("mount "),
        "{calls}"
    );
    let status = rig.status();
    assert!(status.contains("state=failed\n"), "{status}");
    assert!(
        status.contains("refusing to create RAID 10: 1 of 4 devices already hold data"),
        "{status}"
    );
}

#[test]
fn devices_that_never_come_fail_the_unit_and_say_which() {
    let rig = Rig::new();
    rig.attach_nitro(&[0, 1, 3]);
    let started = Instant::now();
    let out = rig.boot(2);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by WAIT"
    );
    assert!(
        stderr(&out).contains("devices missing after 2s: /dev/sdi"),
        "{}",
        stderr(&out)
    );
    assert!(rig.status().contains("state=failed\n"), "{}", rig.status());
    let calls = rig.state("calls");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs"),
        "{calls}"
    );
}

#[test]
fn without_a_tool_to_ask_nvme_devices_the_failure_says_so() {
    let mut rig = Rig::new();
    rig.with_nvme = false;
    rig.attach_nitro(&[0, 1, 2, 3]);
    let out = rig.boot(1);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        rig.status()
            .contains("neither nvme (nvme-cli) nor ebsnvme-id is installed"),
        "{}",
        rig.status()
    );
    assert!(!rig.state("calls").contains("mkfs"));
}

#[test]
fn a_set_attached_late_is_assembled_when_it_arrives() {
    let rig = Rig::new();
    rig.attach_nitro(&[1, 3]);
    std::fs::write(rig.path("state/calls"), "").unwrap();
    let mut child = rig.command(60).spawn().unwrap();
    // The unit waits, and says so in its status file.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rig.status().contains("state=waiting") {
        assert!(Instant::now() < deadline, "never waiting: {}", rig.status());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        rig.status().contains("/dev/sdh /dev/sdi"),
        "{}",
        rig.status()
    );
    rig.attach_nitro(&[0, 2]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "never finished");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    assert!(rig.state("calls").contains("mdadm --create"));
    assert!(rig.status().contains("state=mounted\n"), "{}", rig.status());
}

#[test]
fn an_already_mounted_set_is_left_as_it_is() {
    let rig = Rig::new();
    rig.attach_nitro(&[0, 1, 2, 3]);
    assert!(rig.boot(5).status.success());
    // The unit runs again (another disk appeared) while the set is mounted.
    std::fs::write(rig.path("state/calls"), "").unwrap();
    let out = rig.command(5).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let calls = rig.state("calls");
    assert!(
        !calls.contains("mdadm") && !calls.contains("mkfs") && !calls.contains("mount "),
        "{calls}"
    );
    assert!(
        rig.status().contains("message=already mounted"),
        "{}",
        rig.status()
    );
}
