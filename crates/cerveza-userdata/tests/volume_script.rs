//! The volume boothook: shellcheck, and its decisions on real block devices (loop
//! devices) with mdadm, blkid, mkfs and mount stubbed, since the md driver is not
//! available where the tests run. The stubs keep state in files, like the disks would.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use cerveza_core::profile::ProfileSet;

fn mysql_script() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/profiles");
    let set = ProfileSet::load_dir(&dir).unwrap();
    cerveza_userdata::volumes::script(set.volume("MysqlRaid10").unwrap())
}

#[test]
fn shellcheck_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("volumes.sh");
    // cloud-init strips the #cloud-boothook line before running the script.
    let body = mysql_script().split_once('\n').unwrap().1.to_owned();
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

/// Four loop devices, stub tools, and a way to run the script as a boot would.
struct Rig {
    dir: tempfile::TempDir,
    loops: Vec<String>,
}

const STUB: &str = r#"#!/bin/sh
# Stubs of the storage tools, keeping state under $STATE.
tool=$(basename "$0")
echo "$tool $*" >> "$STATE/calls"
case "$tool" in
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
  mountpoint) exit 1 ;;
  mount|logger|vgs|vgchange|pvcreate|vgcreate|lvcreate) exit 0 ;;
esac
exit 0
"#;

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut loops = Vec::new();
        for i in 0..5 {
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
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        std::fs::create_dir_all(dir.path().join("md")).unwrap();
        let stub = bin.join("stub");
        std::fs::write(&stub, STUB).unwrap();
        Command::new("chmod").arg("+x").arg(&stub).status().unwrap();
        for t in [
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
            std::os::unix::fs::symlink(&stub, bin.join(t)).unwrap();
        }
        Self { dir, loops }
    }

    fn state(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("state").join(name)).unwrap_or_default()
    }

    /// Runs the script once, as a boot; the md device of a previous boot is gone.
    fn boot(&self) -> String {
        let md = self.dir.path().join("md");
        for e in std::fs::read_dir(&md).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let script = mysql_script()
            .replace(
                "DEVICES='/dev/sdf /dev/sdg /dev/sdh /dev/sdi'",
                &format!("DEVICES='{}'", self.loops[..4].join(" ")),
            )
            .replace(
                "MOUNT='/var/lib/mysql'",
                &format!("MOUNT='{}'", self.dir.path().join("mnt").display()),
            );
        let file: PathBuf = self.dir.path().join("boot.sh");
        std::fs::write(&file, script).unwrap();
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap()
        );
        let out = Command::new("/bin/sh")
            .arg(&file)
            .env("PATH", path)
            .env("STATE", self.dir.path().join("state"))
            .env("SPARE", &self.loops[4])
            .env("CERVEZA_MD_DIR", &md)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for l in &self.loops {
            let _ = Command::new("losetup").arg("-d").arg(l).status();
        }
    }
}

#[test]
fn first_boot_creates_later_boots_assemble_and_nothing_is_formatted_twice() {
    let rig = Rig::new();
    let log = rig.boot();
    assert!(rig.state("calls").contains("mdadm --create"), "{log}");
    assert_eq!(
        rig.state("fs").lines().count(),
        1,
        "one mkfs, on the new array: {log}"
    );
    assert!(
        rig.state("calls").contains("mount -o noatime,nofail"),
        "{}",
        rig.state("calls")
    );

    std::fs::write(rig.dir.path().join("state/calls"), "").unwrap();
    let log = rig.boot();
    let calls = rig.state("calls");
    assert!(calls.contains("mdadm --assemble"), "{calls}");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs"),
        "a later boot never creates or formats: {calls}\n{log}"
    );
    assert!(calls.contains("mount -o noatime,nofail"), "{calls}");
}

#[test]
fn a_device_that_holds_data_is_never_formatted() {
    let rig = Rig::new();
    // One of the four devices already holds a filesystem (say, attached by mistake).
    std::fs::write(
        rig.dir.path().join("state/fs"),
        format!("{}\n", rig.loops[2]),
    )
    .unwrap();
    let log = rig.boot();
    let calls = rig.state("calls");
    assert!(
        !calls.contains("mdadm --create") && !calls.contains("mkfs"),
        "{calls}"
    );
    assert!(
        log.contains("refusing to create RAID 10: 1 of 4 devices already hold data"),
        "{log}"
    );
}
