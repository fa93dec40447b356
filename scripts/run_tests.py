#!/usr/bin/env python3
"""Runs the workspace's test binaries (and other test jobs) several at a time.

    scripts/run_tests.py [--jobs N] [--also NAME=COMMAND]... -- CARGO_TEST_ARGS...

`cargo test` runs one test binary after another. Ours spend most of their time waiting
on the lab cloud's timings (a volume takes seconds to attach, a snapshot to complete),
with the CPU mostly idle, and every test keeps to an account of its own (its product's
key), so binaries can share one lab. This builds them with `cargo test --no-run
CARGO_TEST_ARGS`, then runs each binary, the doc tests and every --also command in a
pool of N (CERVEZA_TEST_JOBS, default 3): the longest first, as the last run measured
(kept in the target directory; a clean clone uses the table below).

Each job's output goes to TARGET/test-logs/NAME.log and is printed whole when the job
fails, with its result line when it passes. Every minute the jobs still running are
named. A job still running after CERVEZA_TEST_JOB_TIMEOUT seconds (default 900) is
killed and fails, so a hang is a failure with its output, not a stalled CI. Exit 0 when
every job passed, 1 otherwise (all jobs run: no fail-fast).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
TIMES = TARGET / "cerveza-test-times.json"
LOGS = TARGET / "test-logs"

# Seconds each job took in a full run on a 2-core machine (2026-12-05), for the order
# of a first run; later runs use their own measurements. Only the order depends on it.
KNOWN = {
    "readme": 90, "cerveza/faults": 165, "cerveza/restore_cli": 120, "cerveza/iam_cli": 95,
    "cerveza/registry_outage": 50, "cerveza/lifecycle": 45, "cerveza/volumes_cli": 42,
    "cerveza/fleet_cli": 36, "cerveza/route53_cli": 30, "cerveza/backup_cli": 28,
    "cerveza-aws/pacing": 28, "cerveza/hostkeys_cli": 27, "cerveza/remote_cli": 21,
    "cerveza/network_cli": 18, "cerveza-core/lifecycle": 18, "cerveza/doctor_cli": 17,
}


class Job:
    def __init__(self, name, argv, cwd, env=None):
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env
        self.proc = self.log = self.started = None
        self.seconds = 0.0
        self.status = None

    def start(self):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log = open(LOGS / (self.name.replace("/", "__") + ".log"), "w+b")
        env = dict(os.environ, **(self.env or {}))
        # A session of its own: a timeout kills the job's children (sshd masters,
        # lab clouds of its own) with it.
        self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.started = time.monotonic()

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def binaries(cargo_args):
    """The test executables `cargo test --no-run CARGO_ARGS` builds, as jobs."""
    cmd = ["cargo", "test", "--no-run", "--message-format=json-render-diagnostics", *cargo_args]
    out = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, check=False)
    if out.returncode != 0:
        sys.exit(f"run_tests: `{' '.join(cmd)}` failed (exit {out.returncode})")
    jobs = []
    for line in out.stdout.decode().splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        target = msg["target"]
        package = Path(msg["manifest_path"]).parent
        crate = package.name
        kind = target["kind"][0]
        name = f"{crate}/{target['name']}" if kind == "test" else f"{crate} ({kind})"
        env = {"CARGO_MANIFEST_DIR": str(package), "CARGO_PKG_NAME": crate}
        jobs.append(Job(name, [msg["executable"]], package, env))
    return jobs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("CERVEZA_TEST_JOBS", "3")))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=COMMAND",
                    help="one more job: a shell command run from the workspace root")
    ap.add_argument("cargo_args", nargs="*")
    args = ap.parse_args()
    timeout = float(os.environ.get("CERVEZA_TEST_JOB_TIMEOUT", "900"))

    jobs = binaries(args.cargo_args)
    # Doc tests are not among the executables; cargo runs them itself.
    jobs.append(Job("doc-tests", ["cargo", "test", "--doc", *args.cargo_args], ROOT))
    for spec in args.also:
        name, _, command = spec.partition("=")
        jobs.append(Job(name, ["bash", "-c", command], ROOT))

    try:
        measured = json.loads(TIMES.read_text())
    except (OSError, ValueError):
        measured = {}
    jobs.sort(key=lambda j: -measured.get(j.name, KNOWN.get(j.name, 5)))
    print(f"run_tests: {len(jobs)} jobs, {args.jobs} at a time, the longest first", flush=True)

    waiting, running, done = list(jobs), [], []
    began = last_beat = time.monotonic()

    def stopped(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # Killed (CI's time limit, ^C): the jobs run in sessions of their own, so they
    # are killed here rather than left running.
    signal.signal(signal.SIGTERM, stopped)
    try:
        while waiting or running:
            while waiting and len(running) < args.jobs:
                job = waiting.pop(0)
                job.start()
                running.append(job)
            time.sleep(0.2)
            now = time.monotonic()
            for job in list(running):
                code = job.proc.poll()
                if code is None and now - job.started > timeout:
                    job.kill()
                    job.proc.wait()
                    job.log.write(f"\nrun_tests: killed after {timeout:.0f} s\n".encode())
                    code = "timeout"
                if code is None:
                    continue
                job.seconds, job.status = now - job.started, code
                running.remove(job)
                done.append(job)
                report(job)
            if running and now - last_beat >= 60:
                last_beat = now
                names = ", ".join(f"{j.name} ({now - j.started:.0f} s)" for j in running)
                print(f"run_tests: {now - began:.0f} s; still running: {names}", flush=True)
    except KeyboardInterrupt:
        for job in running:
            job.kill()
        print("run_tests: stopped; killed " + (", ".join(j.name for j in running) or "nothing"),
              file=sys.stderr, flush=True)
        return 130

    failed = [j for j in done if j.status != 0]
    measured.update({j.name: round(j.seconds, 1) for j in done})
    try:
        TIMES.write_text(json.dumps(measured, indent=1, sort_keys=True))
    except OSError:
        pass
    total = time.monotonic() - began
    busy = sum(j.seconds for j in done)
    print(f"run_tests: {len(done)} jobs in {total:.0f} s ({busy:.0f} s of jobs); "
          f"logs in {LOGS}", flush=True)
    if failed:
        print("run_tests: FAILED: " + ", ".join(j.name for j in failed), flush=True)
        return 1
    return 0


def report(job):
    text = job.output()
    if job.status == 0:
        lines = [l for l in text.splitlines() if l.strip()]
        results = [l for l in lines if l.startswith("test result:")]
        summary = (results or lines or ["no output"])[-1]
        print(f"== {job.name}: ok in {job.seconds:.1f} s ({summary})", flush=True)
        return
    print(f"== {job.name}: FAILED (exit {job.status}) in {job.seconds:.1f} s; its output:",
          flush=True)
    sys.stdout.write(text)
    if not text.endswith("\n"):
        sys.stdout.write("\n")
    print(f"== end of {job.name}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
