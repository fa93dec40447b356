//! The volume part: a `#cloud-boothook` (cloud-init runs it at every boot) that
//! assembles a host's EBS volumes and mounts them, as the paper did with mdadm/LVM:
//! * first boot, every member blank: create the array (mdadm RAID 0/1/10, or an LVM
//!   volume group striped over the volumes), make the filesystem;
//! * later boots: assemble / activate what exists;
//! * **never** format a device that holds a filesystem, an array member or an LVM
//!   signature: if some members are blank and others are not, it stops and says so;
//! * mount with `nofail` and without writing /etc/fstab (the paper's outage: a failing
//!   volume in fstab kept the host from booting).

use std::fmt::Write as _;

use cerveza_core::profile::{Raid, VolumeProfile};

/// The script for one volume profile.
pub fn script(vp: &VolumeProfile) -> String {
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
    let mut out = String::new();
    let _ = writeln!(out, "#cloud-boothook");
    let _ = writeln!(out, "#!/bin/sh");
    let _ = writeln!(
        out,
        "# cerveza: volume profile {} ({} x {} GiB {}) on {}",
        vp.name, vp.volumes.count, vp.volumes.size_gb, vp.volumes.volume_type, vp.mount_point
    );
    let _ = writeln!(out, "NAME='{}'", vp.name);
    let _ = writeln!(out, "LEVEL='{level}'");
    let _ = writeln!(out, "DEVICES='{}'", vp.devices.join(" "));
    let _ = writeln!(out, "FS='{}'", vp.filesystem);
    let _ = writeln!(out, "MOUNT='{}'", vp.mount_point);
    let _ = writeln!(out, "OPTIONS='{}'", options.join(","));
    out.push_str(BODY);
    out
}

const BODY: &str = r#"
set -u
log() { echo "cerveza-volumes[$NAME]: $*" >&2; logger -t cerveza-volumes "$NAME: $*" 2>/dev/null || true; }

# /dev/sdf may show up as /dev/xvdf (Xen) or as an NVMe device with a /dev/sdf link.
resolve() {
  for d in "$1" "$(echo "$1" | sed 's|^/dev/sd|/dev/xvd|')"; do
    if [ -b "$d" ]; then readlink -f "$d"; return 0; fi
  done
  return 1
}

# Any filesystem, RAID or LVM signature on a device?
holds_data() {
  [ -n "$(blkid -p -o value -s TYPE "$1" 2>/dev/null)" ] && return 0
  mdadm --examine "$1" >/dev/null 2>&1 && return 0
  return 1
}

# Wait up to 60 s for every device (attachments can lag behind boot).
found=""
tries=0
while :; do
  found=""
  missing=""
  for d in $DEVICES; do
    if r=$(resolve "$d"); then found="$found $r"; else missing="$missing $d"; fi
  done
  [ -z "$missing" ] && break
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then log "devices missing after 60s:$missing; not touching anything"; exit 0; fi
  sleep 1
done
count=$(echo "$found" | wc -w)

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
      vgchange -ay "$vg" >/dev/null
    elif [ "$blank" -eq "$count" ]; then
      # shellcheck disable=SC2086
      if ! { pvcreate -q $found && vgcreate -q "$vg" $found && lvcreate -q -y -n data -l 100%FREE -i "$count" "$vg"; }; then
        log "creating volume group $vg failed"; exit 0
      fi
      created=1
    else
      log "refusing to create $vg: $((count - blank)) of $count devices already hold data"; exit 0
    fi
    target="/dev/$vg/data"
    ;;
  *)
    # CERVEZA_MD_DIR is for tests only (no md driver there); hosts use /dev/md.
    md="${CERVEZA_MD_DIR:-/dev/md}/cerveza-$NAME"
    if [ ! -b "$md" ]; then
      # shellcheck disable=SC2086
      mdadm --assemble "$md" $found >/dev/null 2>&1 || true
    fi
    if [ ! -b "$md" ]; then
      if [ "$blank" -ne "$count" ]; then
        log "refusing to create RAID $LEVEL: $((count - blank)) of $count devices already hold data and do not assemble"; exit 0
      fi
      # shellcheck disable=SC2086
      mdadm --create "$md" --run --level="$LEVEL" --raid-devices="$count" $found || { log "creating RAID $LEVEL failed"; exit 0; }
      created=1
    fi
    target="$md"
    ;;
esac

if [ "$created" -eq 1 ]; then
  log "new storage: making $FS on $target"
  "mkfs.$FS" "$target" >/dev/null || { log "mkfs.$FS $target failed"; exit 0; }
fi
mkdir -p "$MOUNT"
if ! mountpoint -q "$MOUNT"; then
  if mount -o "$OPTIONS" "$target" "$MOUNT"; then
    log "mounted $target on $MOUNT"
  else
    log "mounting $target on $MOUNT failed"
  fi
fi
"#;
