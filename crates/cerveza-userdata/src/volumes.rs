//! The volume part: a `#cloud-boothook` (cloud-init runs it at every boot) that makes a
//! host assemble its EBS volumes and mount them, as the paper did with mdadm/LVM.
//!
//! The boothook only installs and starts; the work is done by [`ASSEMBLER`], run by the
//! systemd unit `cerveza-volumes@<profile>.service`:
//! * at every boot (the boothook starts it), and again whenever a block device appears
//!   (a udev rule), so a set attached late (the volumes of a new instance are attached
//!   once it runs; a repair attaches them to a running host) is still assembled;
//! * it finds each volume by what EBS tells the instance: on Nitro instances a volume is
//!   `/dev/nvmeXn1` and its NVMe controller names the device asked for in `AttachVolume`
//!   (`nvme id-ctrl`: model "Amazon Elastic Block Store", vendor data `sdf`); on Xen it
//!   is `/dev/xvdf` or `/dev/sdf`;
//! * first boot, every member blank: create the array (mdadm RAID 0/1/10, or an LVM
//!   volume group striped over the volumes), make the filesystem; later: assemble and
//!   activate what exists;
//! * **never** format a device that holds a filesystem, an array member or an LVM
//!   signature: if some members are blank and others are not, it stops and says so;
//! * mount with `nofail` and without writing /etc/fstab (the paper's outage: a failing
//!   volume in fstab kept the host from booting);
//! * whatever happens, it says so where an operator looks: the unit fails (and its lines
//!   go to the console, which `GetConsoleOutput` shows), and the status file
//!   `/var/lib/cerveza/volumes/<profile>.status` says `mounted`, `waiting` or `failed`
//!   with the reason; `cerveza doctor` reads it.

use std::fmt::Write as _;

use cerveza_core::profile::{Raid, VolumeProfile};

/// Where the boothook installs the assembler on the host.
pub const ASSEMBLER_PATH: &str = "/usr/local/lib/cerveza/volumes.sh";
/// The directory of each volume profile's settings on the host (`<profile>.conf`).
pub const SETTINGS_DIR: &str = cerveza_core::profile::VOLUME_SETTINGS_DIR;
/// The directory of each volume profile's status file on the host (`<profile>.status`).
pub const STATUS_DIR: &str = cerveza_core::profile::VOLUME_STATUS_DIR;
/// The systemd template unit that runs the assembler.
pub const UNIT_PATH: &str = "/etc/systemd/system/cerveza-volumes@.service";

/// The heredoc terminator of the boothook; no installed file holds it.
const END: &str = "CERVEZA_END_OF_FILE";

/// The boothook for one volume profile.
pub fn script(vp: &VolumeProfile) -> String {
    let name = &vp.name;
    let mut out = String::new();
    let _ = writeln!(out, "#cloud-boothook");
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(
        out,
        "# cerveza: volume profile {} ({} x {} GiB {}) on {}",
        vp.name, vp.volumes.count, vp.volumes.size_gb, vp.volumes.volume_type, vp.mount_point
    );
    out.push_str(
        "# Installs the assembler, its settings, a systemd unit and a udev rule, then starts\n\
         # the unit; a block device that appears later starts it again.\n",
    );
    out.push_str("set -u\numask 022\n");
    let _ = writeln!(
        out,
        "mkdir -p {SETTINGS_DIR} /usr/local/lib/cerveza /etc/systemd/system /etc/udev/rules.d"
    );
    for (path, body) in [
        (format!("{SETTINGS_DIR}/{name}.conf"), settings(vp)),
        (ASSEMBLER_PATH.to_owned(), ASSEMBLER.to_owned()),
        (UNIT_PATH.to_owned(), UNIT.to_owned()),
        (udev_rule_path(vp), udev_rule(vp)),
    ] {
        let _ = write!(out, "cat > {path} <<'{END}'\n{body}{END}\n");
    }
    let _ = write!(
        out,
        r#"if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload 2>/dev/null || true
  systemctl --no-block start {unit}
else
  /bin/sh {ASSEMBLER_PATH} {SETTINGS_DIR}/{name}.conf </dev/null >/dev/null 2>&1 &
fi
"#,
        unit = unit_instance(vp)
    );
    out
}

/// The systemd unit instance of a volume profile.
pub fn unit_instance(vp: &VolumeProfile) -> String {
    format!("cerveza-volumes@{}.service", vp.name)
}

/// Where the boothook writes a volume profile's udev rule.
pub fn udev_rule_path(vp: &VolumeProfile) -> String {
    format!("/etc/udev/rules.d/90-cerveza-volumes-{}.rules", vp.name)
}

/// The udev rule: a disk that appears (at boot or attached later) starts the unit.
pub fn udev_rule(vp: &VolumeProfile) -> String {
    format!(
        "# cerveza: a disk that appears (an EBS volume attached late) assembles {name} again\n\
         ACTION==\"add\", SUBSYSTEM==\"block\", ENV{{DEVTYPE}}==\"disk\", KERNEL==\"nvme*|xvd*|sd*\", TAG+=\"systemd\", ENV{{SYSTEMD_WANTS}}+=\"{unit}\"\n",
        name = vp.name,
        unit = unit_instance(vp)
    )
}

/// The assembler's settings for one volume profile (shell assignments; every value is
/// validated by the profile loader to hold no quote).
pub fn settings(vp: &VolumeProfile) -> String {
    let level = match vp.raid {
        Raid::None => "none",
        Raid::Raid0 => "0",
        Raid::Raid1 => "1",
        Raid::Raid10 => "10",
        Raid::Lvm => "lvm",
    };
    let mut options: Vec<&str> = vp.mount_options.iter().map(String::as_str).collect();
    if !options.contains(&"nofail") {
        options.push("nofail");
    }
    let name = &vp.name;
    format!(
        "# cerveza: volume profile {name}, read by {ASSEMBLER_PATH}\n\
         NAME='{name}'\n\
         LEVEL='{level}'\n\
         DEVICES='{devices}'\n\
         FS='{fs}'\n\
         MOUNT='{mount}'\n\
         OPTIONS='{options}'\n\
         WAIT='{wait}'\n\
         STATUS='{STATUS_DIR}/{name}.status'\n\
         DEVDIR='/dev'\n\
         MDDIR='/dev/md'\n\
         MOUNTS='/proc/mounts'\n",
        devices = vp.devices.join(" "),
        fs = vp.filesystem,
        mount = vp.mount_point,
        options = options.join(","),
        wait = vp.device_timeout,
    )
}

/// The packages the assembler needs for a volume profile, installed by cloud-init on the
/// first boot (most images have them already; the assembler re-checks every second while
/// it waits, so tools that arrive during that wait are used).
pub fn packages(vp: &VolumeProfile) -> Vec<&'static str> {
    let mut p = vec!["nvme-cli"];
    match vp.raid {
        Raid::Raid0 | Raid::Raid1 | Raid::Raid10 => p.push("mdadm"),
        Raid::Lvm => p.push("lvm2"),
        Raid::None => {}
    }
    match vp.filesystem.as_str() {
        "xfs" => p.push("xfsprogs"),
        "btrfs" => p.push("btrfs-progs"),
        _ => {}
    }
    p
}

/// The systemd template unit. `%i` is the volume profile's name.
pub const UNIT: &str = "\
# cerveza: assembles and mounts the EBS volume set of volume profile %i
[Unit]
Description=cerveza: assemble and mount the EBS volume set %i
After=local-fs.target
[Service]
Type=oneshot
ExecStart=/bin/sh /usr/local/lib/cerveza/volumes.sh /etc/cerveza/volumes/%i.conf
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=infinity
";

/// The assembler, run as `sh volumes.sh SETTINGS`. It bounds its own wait (`WAIT`).
pub const ASSEMBLER: &str = r#"#!/bin/sh
# cerveza: assembles and mounts one volume profile's EBS volumes. Run by
# cerveza-volumes@<profile>.service at boot and whenever a disk appears; safe to run
# again at any time: it never formats a device that holds data.
set -u
[ -r "${1:-}" ] || { echo "usage: $0 SETTINGS-FILE" >&2; exit 2; }
# shellcheck disable=SC1090
. "$1"

log() { echo "cerveza-volumes[$NAME]: $*" >&2; logger -t cerveza-volumes "$NAME: $*" 2>/dev/null || true; }

# The status file doctor reads: state (mounted, waiting, failed), the mount's source as
# the kernel shows it, and a message. Written whole, then renamed.
status() {
  mkdir -p "${STATUS%/*}" 2>/dev/null
  { echo "state=$1"; echo "mount=$MOUNT"; echo "source=$2"; echo "message=$3"
    echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; } > "$STATUS.tmp" && mv -f "$STATUS.tmp" "$STATUS"
}
fail() { log "$*"; status failed "" "$*"; exit 1; }

# /dev/sdf, /dev/xvdf, sdf and xvdf are one EBS slot: f.
slot() { echo "$1" | sed -e 's|^/dev/||' -e 's|^xvd||' -e 's|^sd||'; }

# The slot an NVMe device says it is attached at: EBS volumes have the model "Amazon
# Elastic Block Store" (bytes 24-63 of the controller's identify data) and the device
# name of the attachment in the first 32 bytes of its vendor data (from byte 3072).
# Exit 1: not an EBS volume; 2: no tool here to ask it.
ebs_slot() {
  if command -v nvme >/dev/null 2>&1; then
    model=$(nvme id-ctrl --raw-binary "$1" 2>/dev/null | dd bs=1 skip=24 count=40 2>/dev/null | tr -d '\000')
    case $model in "Amazon Elastic Block Store"*) ;; *) return 1 ;; esac
    bdev=$(nvme id-ctrl --raw-binary "$1" 2>/dev/null | dd bs=1 skip=3072 count=32 2>/dev/null | tr -d '\000 ')
  elif command -v ebsnvme-id >/dev/null 2>&1; then
    bdev=$(ebsnvme-id -b "$1" 2>/dev/null)
  else
    return 2
  fi
  [ -n "$bdev" ] || return 1
  slot "$bdev"
}

# Looks for every device once: sets found (real paths), missing (profile names) and
# no_tool (NVMe devices that could not be asked).
scan() {
  found="" missing="" no_tool="" map=""
  for n in "$DEVDIR"/nvme*n1; do
    [ -b "$n" ] || continue
    s=$(ebs_slot "$n"); rc=$?
    if [ "$rc" -eq 0 ]; then map="$map $s=$n"; elif [ "$rc" -eq 2 ]; then no_tool=1; fi
  done
  for d in $DEVICES; do
    s=$(slot "$d") r=""
    for c in "$DEVDIR/sd$s" "$DEVDIR/xvd$s"; do
      if [ -b "$c" ]; then r=$(readlink -f "$c"); break; fi
    done
    if [ -z "$r" ]; then
      for kv in $map; do
        if [ "${kv%%=*}" = "$s" ]; then r=$(readlink -f "${kv#*=}"); break; fi
      done
    fi
    if [ -n "$r" ]; then found="$found $r"; else missing="$missing $d"; fi
  done
}

# Any filesystem, RAID or LVM signature on a device?
holds_data() {
  [ -n "$(blkid -p -o value -s TYPE "$1" 2>/dev/null)" ] && return 0
  mdadm --examine "$1" >/dev/null 2>&1 && return 0
  return 1
}

# What the kernel shows mounted on $MOUNT (the last mount wins).
source_of() { awk -v m="$MOUNT" '$2 == m { s = $1 } END { print s }' "$MOUNTS" 2>/dev/null; }

waited=0
while :; do
  scan
  [ -z "$missing" ] && break
  if [ "$waited" -ge "$WAIT" ]; then
    why="devices missing after ${WAIT}s:$missing"
    if [ -n "$no_tool" ]; then
      why="$why; NVMe disks are attached but neither nvme (nvme-cli) nor ebsnvme-id is installed to tell which is which"
    fi
    fail "$why; nothing was touched, and $MOUNT is not mounted (a volume attached later starts this again)"
  fi
  [ "$waited" -eq 0 ] && status waiting "" "waiting up to ${WAIT}s for$missing"
  waited=$((waited + 1))
  sleep 1
done
count=$(echo "$found" | wc -w)

if mountpoint -q "$MOUNT"; then
  status mounted "$(source_of)" "already mounted"
  exit 0
fi

blank=0
for d in $found; do holds_data "$d" || blank=$((blank + 1)); done

target=""
created=0
case "$LEVEL" in
  none)
    for d in $found; do target=$d; break; done
    if [ "$blank" -eq 1 ]; then created=1; fi
    ;;
  lvm)
    vg="cerveza-$NAME"
    if vgs "$vg" >/dev/null 2>&1; then
      vgchange -ay "$vg" >/dev/null || fail "activating volume group $vg failed"
    elif [ "$blank" -eq "$count" ]; then
      # shellcheck disable=SC2086
      if ! { pvcreate -q $found && vgcreate -q "$vg" $found && lvcreate -q -y -n data -l 100%FREE -i "$count" "$vg"; }; then
        fail "creating volume group $vg failed"
      fi
      created=1
    else
      fail "refusing to create $vg: $((count - blank)) of $count devices already hold data"
    fi
    target="$DEVDIR/$vg/data"
    ;;
  *)
    md="$MDDIR/cerveza-$NAME"
    if [ ! -b "$md" ]; then
      # shellcheck disable=SC2086
      mdadm --assemble "$md" $found >/dev/null 2>&1 || true
    fi
    if [ ! -b "$md" ]; then
      if [ "$blank" -ne "$count" ]; then
        fail "refusing to create RAID $LEVEL: $((count - blank)) of $count devices already hold data and do not assemble"
      fi
      # shellcheck disable=SC2086
      mdadm --create "$md" --run --level="$LEVEL" --raid-devices="$count" $found || fail "creating RAID $LEVEL failed"
      created=1
    fi
    target="$md"
    ;;
esac

if [ "$created" -eq 1 ]; then
  log "new storage: making $FS on $target"
  "mkfs.$FS" "$target" >/dev/null || fail "mkfs.$FS $target failed"
fi
mkdir -p "$MOUNT"
mount -o "$OPTIONS" "$target" "$MOUNT" || fail "mounting $target on $MOUNT failed"
log "mounted $target on $MOUNT"
status mounted "$(source_of)" "mounted $target from$found"
"#;
