#!/usr/bin/env python3
"""Runs the README's examples and compares their output with what the README shows.

Every fenced block whose first line starts with `$ ` is an example: each `$ ` line is a
command (run with bash in the work directory, in order, blocks sharing state), and the
lines after it, up to the next command, are its output as a terminal shows it (stdout and
stderr together). HTML comments right before a block steer it:

    <!-- check-setup: shell commands -->   run first, silently (must succeed)
    <!-- check-skip: reason -->            the block is not run (say why)

A command that exits with another status than 0 shows it as its last line, `[exit N]`;
the check compares every command's status. Which stream each line comes on (stdout or
stderr) is recorded beside the README, in scripts/readme-streams.json (one string of
`o`/`e` per command, in order), and compared too: a message that moves to stdout breaks
`-o json | jq`, and a table that moves to stderr breaks a pipe.

Output is compared after masking only what differs from run to run: resource ids
(i-0abc…, vol-…), launch tokens and claim ids, IPv4 addresses and ports, clock times, durations
and ages, and what a lifecycle command spent polling ("17 AWS requests (17.0 per
host)"); runs of blanks count as one (table columns widen with the data). Every other
digit must match: hostnames (web02 is not web03), regions, zones, counts. Lines may come
in any order where stdout and stderr interleave (progress of hosts handled together),
but stdout's own lines must keep their order (except lines a host or region prefixes,
`web01: …`, which come as the hosts answer), and every line must be there: a missing
row, a changed message or an extra line fails. A `...` line stands for output left out:
then the lines shown must be there and others may follow. `--bless` writes the real
output (and streams, and statuses) into the README instead (keeping a block's excerpt
as long as it was).

    readme_check.py README.md WORKDIR [--bless]
"""

import collections
import json
import os
import re
import selectors
import subprocess
import sys

FENCE = re.compile(r"^```")
EXIT = re.compile(r"^\[exit (\d+)\]$")
STREAMS = os.environ.get("README_CHECK_STREAMS") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "readme-streams.json")
ELLIPSIS = "..."

DIRECTIVE = re.compile(r"^<!--\s*check-(setup|skip):\s*(.*?)\s*-->\s*$", re.S)
ID = re.compile(r"\b(i|vol|eipalloc|eni|snap|ami|r)-[0-9a-f]{8,17}\b")
IPV4 = re.compile(r"\b\d{1,3}(\.\d{1,3}){3}\b")
# Clock times, durations and what polling costs: they vary from run to run; every other
# digit (host numbers, regions, counts, exit codes) must be what the README shows.
# A backup set's id carries the UTC time it was taken and a random suffix
# (db01-20261204T213316Z-3f2a).
COMPACT_STAMP = re.compile(r"\b\d{8}T\d{6}Z(-[0-9a-f]{4})?\b")
STAMP = re.compile(r"\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?")
SECONDS = re.compile(r"\b\d+(\.\d+)?\s?(ms|s)\b")
# The lab's ports are the machine's choice (CERVEZA_LAB_README_PORT and the ones after it).
PORT = re.compile(r"\b(IP|localhost):\d{2,5}\b")
# A line a host (or region) prefixes comes when that host answers: in any order.
ANSWER = re.compile(r"^[a-z][a-z0-9.-]*: ")
# A lifecycle command's requests depend on how often it polled the cloud while waiting.
PER_HOST = re.compile(r"\b\d+ AWS requests \(\d+(\.\d+)? per host\)")
# The request summary may mention retries when the lab throttled a burst.
RETRIES = re.compile(r", \d+ (retried|throttled or failed)")
TIMEOUT = int(os.environ.get("README_CHECK_TIMEOUT", "300"))


AGE = re.compile(r"\b\d+(s|m|h\d+m|d\d+h)\b")
WHO = re.compile(r"\bby \S+@\S+")
TOKEN = re.compile(r"\bcz-[0-9a-f]{32}\b")
CLAIM = re.compile(r"\bcerveza:claim=[0-9a-f]{16}\b")


def normalize(line):
    line = RETRIES.sub("", line)
    line = WHO.sub("by USER@HOST", line)
    line = TOKEN.sub("cz-TOKEN", line)
    line = CLAIM.sub("cerveza:claim=CLAIM", line)
    line = ID.sub(r"\1-ID", line)
    line = STAMP.sub("TIME", line)
    line = COMPACT_STAMP.sub("TIME", line)
    line = PER_HOST.sub("N AWS requests (N per host)", line)
    # One word for both: an age is "54s" in one run and "1m" in a slower one.
    line = SECONDS.sub("DURATION", line)
    line = AGE.sub("DURATION", line)
    line = IPV4.sub("IP", line)
    line = PORT.sub(r"\1:PORT", line)
    return " ".join(line.split())


class Block:
    def __init__(self, start, end, lines, directives):
        self.start, self.end = start, end  # README line numbers of the fences (0-based)
        self.directives = directives
        self.commands = []  # [(command, [expected lines])]
        for line in lines:
            if line.startswith("$ "):
                self.commands.append((line[2:], []))
            elif self.commands:
                self.commands[-1][1].append(line)
        self.codes = []  # the exit code each command shows (`[exit N]`; 0 when none)
        for _, out in self.commands:
            while out and not out[-1].strip():
                out.pop()
            m = EXIT.match(out[-1]) if out else None
            self.codes.append(int(m.group(1)) if m else 0)
            if m:
                out.pop()


def blocks(text):
    lines = text.split("\n")
    out, i, pending = [], 0, []
    while i < len(lines):
        line = lines[i]
        if line.startswith("<!--"):
            j = i
            while "-->" not in lines[j]:
                j += 1
            m = DIRECTIVE.match("\n".join(lines[i : j + 1]))
            if m:
                pending.append((m.group(1), m.group(2)))
            i = j + 1
            continue
        if FENCE.match(line):
            j = i + 1
            while not FENCE.match(lines[j]):
                j += 1
            body = lines[i + 1 : j]
            if body and body[0].startswith("$ "):
                out.append(Block(i, j, body, pending))
            pending = []
            i = j + 1
            continue
        if line.strip():
            pending = []
        i += 1
    return out


def run(command, workdir):
    """Runs a command; returns its output lines in arrival order as (stream, line)."""
    p = subprocess.Popen(
        ["bash", "-c", command],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, "out")
    sel.register(p.stderr, selectors.EVENT_READ, "err")
    partial = {"out": b"", "err": b""}
    lines = []
    open_streams = 2
    while open_streams:
        events = sel.select(timeout=TIMEOUT)
        if not events:
            p.kill()
            raise SystemExit(f"readme-check: {command!r} gave no output for {TIMEOUT}s")
        for key, _ in events:
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                open_streams -= 1
                if partial[key.data]:
                    lines.append((key.data, partial[key.data].decode(errors="replace")))
                continue
            data = partial[key.data] + chunk
            *done, partial[key.data] = data.split(b"\n")
            lines.extend((key.data, d.decode(errors="replace")) for d in done)
    p.wait()
    return lines, p.returncode


def compare(expected, streams, actual):
    """None when the output matches, else a description of the difference. `streams`
    says which stream each expected line comes on ("o" stdout, "e" stderr). A `...` line
    in the README stands for lines left out: then only what is shown must be there."""
    partial = ELLIPSIS in expected
    want = [(st, normalize(line)) for st, line in zip(streams, (x for x in expected if x != ELLIPSIS))]
    got = [(stream[0], normalize(line)) for stream, line in actual]
    missing = collections.Counter(want) - collections.Counter(got)
    extra = collections.Counter() if partial else collections.Counter(got) - collections.Counter(want)
    if missing or extra:
        name = {"o": "stdout", "e": "stderr"}
        text = []
        text += [f"  - ({name[st]}) {line}" for st, line in missing.elements()]
        text += [f"  + ({name[st]}) {line}" for st, line in extra.elements()]
        return "\n".join(text)
    if partial:
        return None
    # stdout's lines in the README keep the program's order, except each host's answer.
    out = [line for st, line in got if st == "o" and not ANSWER.match(line)]
    ordered = [line for st, line in want if st == "o" and not ANSWER.match(line)]
    if ordered != out:
        return "  stdout's lines are in another order:\n" + "\n".join(f"    {line}" for line in out)
    return None


def load_streams():
    """The recorded stream of each line each command shows, in the order commands run:
    [{"command": "...", "streams": "oe…"}] (written by --bless)."""
    try:
        with open(STREAMS, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    bless = "--bless" in sys.argv
    readme, workdir = args
    text = open(readme, encoding="utf-8").read()
    lines = text.split("\n")
    failures, checked, replacements = [], 0, []
    streams, blessed = load_streams(), []
    for b in blocks(text):
        kinds = dict(b.directives)
        if "skip" in kinds:
            print(f"readme-check: line {b.start + 1}: skipped ({kinds['skip']})")
            continue
        for kind, script in b.directives:
            if kind == "setup":
                r = subprocess.run(["bash", "-c", script], cwd=workdir, capture_output=True, text=True)
                if r.returncode != 0:
                    raise SystemExit(f"readme-check: line {b.start + 1}: setup failed:\n{script}\n{r.stdout}{r.stderr}")
        body = []
        for (command, expected), want_code in zip(b.commands, b.codes):
            actual, code = run(command, workdir)
            recorded = streams[checked] if checked < len(streams) else None
            checked += 1
            shown_lines = [x for x in expected if x != ELLIPSIS]
            where = f"README line {b.start + 1}: $ {command}  (exit {code})"
            if not recorded or recorded["command"] != command or len(recorded["streams"]) != len(shown_lines):
                failures.append(f"{where}\n  which stream each line comes on is not recorded in {STREAMS}")
                recorded = {"streams": "o" * len(shown_lines)}
            diff = compare(expected, recorded["streams"], actual)
            if diff:
                failures.append(f"{where}\n{diff}")
            if code != want_code:
                failures.append(f"{where}\n  exits {code}, the README says {want_code}")
            if body:
                body.append("")
            body.append(f"$ {command}")
            got = [(stream[0], line.rstrip()) for stream, line in actual]
            if ELLIPSIS in expected:
                # Keep the README's excerpt: as many lines as it showed, then `...`.
                got = got[: expected.index(ELLIPSIS)]
            body.extend(line for _, line in got)
            if ELLIPSIS in expected:
                body.append(ELLIPSIS)
            if code != 0:
                body.append(f"[exit {code}]")
            blessed.append({"command": command, "streams": "".join(st for st, _ in got)})
        replacements.append((b.start + 1, b.end, body))
    if bless:
        for start, end, body in reversed(replacements):
            lines[start:end] = body
        open(readme, "w", encoding="utf-8").write("\n".join(lines))
        with open(STREAMS, "w", encoding="utf-8") as f:
            json.dump(blessed, f, indent=0, ensure_ascii=False)
            f.write("\n")
        print(f"readme-check: {checked} command(s) run, output written into {readme}")
        return 0
    for f in failures:
        print(f, file=sys.stderr)
    print(f"readme-check: {checked} command(s) run, {len(failures)} differ from {readme}")
    if failures:
        print("readme-check: fix the program or run `scripts/readme-check --bless` and review the diff", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
