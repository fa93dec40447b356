"""Feeds a user-data blob to the real cloud-init code (Debian's package, run by the
system /usr/bin/python3) and prints what it made of it, as JSON:

    {"parts": [{"type", "filename", "payload"}], "schema_errors": {filename: message}}

UserDataProcessor is what cloud-init runs at boot; its URL reader is stubbed so an
#include never reaches the network. Every text/cloud-config part is checked against
cloud-init's own schema in strict mode.
"""
import json
import sys

import tempfile

import yaml
from cloudinit import helpers, user_data
from cloudinit.config import schema


def no_urls(url, *args, **kwargs):
    raise user_data.UrlError("network disabled in tests: " + str(url))


user_data.read_file_or_url = no_urls

blob = open(sys.argv[1], "rb").read()
tmp = tempfile.mkdtemp()
paths = helpers.Paths({"cloud_dir": tmp, "run_dir": tmp})
msg = user_data.UserDataProcessor(paths).process(blob)
parts = []
schema_errors = {}
full = schema.get_schema()
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    payload = part.get_payload(decode=True).decode("utf-8")
    filename = part.get_filename()
    ctype = part.get_content_type()
    parts.append({"type": ctype, "filename": filename, "payload": payload})
    if ctype == "text/cloud-config":
        try:
            schema.validate_cloudconfig_schema(yaml.safe_load(payload), full, strict=True, log_details=False)
        except Exception as e:  # SchemaValidationError and friends
            schema_errors[filename] = str(e)
print(json.dumps({"parts": parts, "schema_errors": schema_errors}))
