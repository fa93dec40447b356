#!/bin/sh
# cerveza backup --freeze, run on the host through ssh:
#   freeze BOUND FSFREEZE MOUNT_POINT...   freezes each mounted MOUNT_POINT; the host
#                                          thaws them itself BOUND seconds later, whatever
#                                          happens to cerveza or the ssh session
#   thaw   0     FSFREEZE MOUNT_POINT...   thaws them (one not frozen is not an error)
# FSFREEZE is the command that freezes ("sudo -n fsfreeze" on a real host).
set -u
action=$1 bound=$2 fsfreeze=$3
shift 3

thaw_all() {
  for m in "$@"; do
    # shellcheck disable=SC2086 # FSFREEZE is a command with its arguments
    $fsfreeze -u "$m" 2>/dev/null || true
  done
}

case $action in
thaw)
  thaw_all "$@"
  echo thawed
  ;;
freeze)
  # The watchdog first, in a session of its own: it outlives this ssh session.
  # shellcheck disable=SC2016 # expanded by the watchdog's own shell
  setsid sh -c 'sleep "$1"; f=$2; shift 2; for m in "$@"; do $f -u "$m" 2>/dev/null; done' \
    watchdog "$bound" "$fsfreeze" "$@" </dev/null >/dev/null 2>&1 &
  frozen=""
  for m in "$@"; do
    if ! mountpoint -q "$m"; then
      echo "cerveza: $m is not mounted: nothing to freeze there" >&2
      continue
    fi
    # shellcheck disable=SC2086
    if ! $fsfreeze -f "$m"; then
      echo "cerveza: could not freeze $m; thawing what was frozen" >&2
      # shellcheck disable=SC2086
      thaw_all $frozen
      exit 1
    fi
    frozen="$frozen $m"
  done
  echo "frozen:$frozen"
  ;;
*)
  echo "cerveza: unknown action $action" >&2
  exit 2
  ;;
esac
