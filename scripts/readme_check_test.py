#!/usr/bin/env python3
"""The README check fails when the README is wrong: a hostname, an exit status or a
stream that differs, and passes over what truly varies (ids, addresses, times).

    python3 scripts/readme_check_test.py
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "readme_check.py")

# A program that prints a results table on stdout and progress on stderr, then exits 5.
PROGRAM = r"""#!/bin/sh
echo "web02: started i-0123456789abcdef0 in us-east-1b (10.0.3.7) after 2.4s" >&2
printf 'HOST   ZONE        STATE\nweb02  us-east-1b  running\n'
echo "2 host(s): 17 AWS requests (8.5 per host)" >&2
exit 5
"""

README = """# Tool

```
$ ./prog
web02: started i-0fedcba987654321f in us-east-1b (10.0.9.12) after 11.0s
HOST   ZONE        STATE
web02  us-east-1b  running
2 host(s): 23 AWS requests (11.5 per host)
[exit 5]
```
"""
STREAMS = [{"command": "./prog", "streams": "eooe"}]


class ReadmeCheck(unittest.TestCase):
    def check(self, readme=README, streams=STREAMS):
        with tempfile.TemporaryDirectory() as d:
            prog = os.path.join(d, "prog")
            with open(prog, "w") as f:
                f.write(PROGRAM)
            os.chmod(prog, 0o755)
            with open(os.path.join(d, "README.md"), "w") as f:
                f.write(readme)
            with open(os.path.join(d, "streams.json"), "w") as f:
                json.dump(streams, f)
            env = dict(os.environ, README_CHECK_STREAMS=os.path.join(d, "streams.json"))
            r = subprocess.run([sys.executable, CHECK, os.path.join(d, "README.md"), d],
                               capture_output=True, text=True, env=env)
            return r.returncode, r.stdout + r.stderr

    def test_what_varies_is_masked(self):
        code, out = self.check()
        self.assertEqual(code, 0, out)

    def test_another_hostname_in_a_table_fails(self):
        code, out = self.check(README.replace("web02  us-east-1b", "web03  us-east-1b"))
        self.assertEqual(code, 1, out)
        self.assertIn("- (stdout) web03 us-east-1b running", out)

    def test_another_zone_or_count_fails(self):
        for wrong in (README.replace("in us-east-1b (", "in us-east-1c ("),
                      README.replace("2 host(s)", "3 host(s)")):
            code, out = self.check(wrong)
            self.assertEqual(code, 1, out)

    def test_rows_of_a_table_keep_their_order(self):
        rows = "HOST   ZONE        STATE\nweb02  us-east-1b  running\n"
        code, out = self.check(README.replace(rows, "web02  us-east-1b  running\nHOST   ZONE        STATE\n"))
        self.assertEqual(code, 1, out)
        self.assertIn("another order", out)

    def test_another_exit_status_fails(self):
        for wrong in (README.replace("[exit 5]", "[exit 4]"), README.replace("[exit 5]\n", "")):
            code, out = self.check(wrong)
            self.assertEqual(code, 1, out)
            self.assertIn("exits 5, the README says", out)

    def test_a_line_on_another_stream_fails(self):
        code, out = self.check(streams=[{"command": "./prog", "streams": "oooe"}])
        self.assertEqual(code, 1, out)
        self.assertIn("+ (stderr) web02: started", out)
        code, out = self.check(streams=[])
        self.assertEqual(code, 1, out)
        self.assertIn("is not recorded", out)


if __name__ == "__main__":
    unittest.main()
