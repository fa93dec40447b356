#!/usr/bin/env python3
"""The lab's cloud: moto's server, patched to behave like EC2 rather than like a dict.

    labcloud.py --port P [--profiles DIR]...

moto answers every request at once, never says no on its own and accepts anything. EC2
takes time, is eventually consistent, validates and throttles. This launcher runs moto's
own WSGI application in-process with these behaviours added (docs/lab-cloud.md lists
each one, with the test that shows it):

  time          instances pending -> running, stopping -> stopped, shutting-down ->
                terminated; volumes creating -> available, attachments attaching ->
                attached, deleting -> gone; DynamoDB tables CREATING -> ACTIVE; the
                console output (GetConsoleOutput) is empty until a while after launch, then
                carries cloud-init's host key block with the lab sshd's real keys
                (--host-keys FILE.pub)
  too early     StartInstances of a stopping instance and StopInstances of a pending one
                (IncorrectInstanceState), AttachVolume of a creating volume
                (IncorrectState), AssociateAddress to a pending instance (InvalidInstanceID)
  consistency   a new instance is missing from every read (InvalidInstanceID.NotFound by
                id, absent from filtered lists) for a while after RunInstances answered;
                a terminated one leaves every read `terminated-listed` seconds after it
                terminated (per account: POST /lab-api/limits), while its ClientToken
                still answers
  idempotency   ClientToken of RunInstances and CreateVolume as EC2 documents it: the
                same token answers the first call's resources; with other parameters,
                IdempotentParameterMismatch
  validation    unknown AMIs and key pairs are refused (AMIs exist per region); an image
                `resolve:ssm:<public parameter>` launches the AMI it names there (Canonical's
                Ubuntu LTS parameters), an unknown one is refused; user-data
                over 16 KB is refused; CreateVolume's sizes, IOPS and throughput per volume
                type and their ratios, as EC2 refuses them
  KMS           EBS encryption by default and its default key, per account and region; a
                KMS key that is missing, disabled or pending deletion makes a new encrypted
                volume vanish while creating (its token then answers
                IdempotentParameterMismatch) and a new instance whose volumes it encrypts
                go pending -> shutting-down -> terminated with StateReason
                Client.InvalidKMSKey.InvalidState
  networks      RunInstances with security group names and a subnet outside a default VPC
                (InvalidParameterCombination), with groups and a subnet of different VPCs
                (InvalidParameter), and, in an account without a default VPC, without a
                subnet (VPCIdNotSpecified)
  limits        capacity per zone and instance type, instance types a zone does not offer,
                images without ENA, and account quotas (vCPUs, running instances, EBS
                GiB per volume type, Elastic IPs), per account and region, set through
                POST /lab-api/limits: RunInstances, StartInstances, CreateVolume and
                AllocateAddress are refused with EC2's codes and messages beyond them
  route53       a change is PENDING, then INSYNC `route53-insync` seconds later (GetChange)
  accounts      STS GetCallerIdentity answers an account id per access key; an S3 bucket
                belongs to the account that created it: CreateBucket of its name by another
                is BucketAlreadyExists, a request with another ExpectedBucketOwner is
                AccessDenied (otherwise it is open, as a squatter's policy leaves it)
  throttling    EC2's published token buckets per account, region and action (request
                and resource buckets), DynamoDB per-table, Route53 per account, S3 per
                bucket; the "account" is the access key id

Timings come from CERVEZA_LAB_CLOUD, a comma-separated list of key=seconds (a range
"20-40" draws uniformly) or a preset name ("test", the default; "realistic"):

  pending stopping shutting-down volume-creating volume-attaching volume-deleting
  table-creating visibility console terminated-listed route53-insync throttle(on|off)
  snapshot snapshot-copy (seconds per GiB a snapshot, or a copy, stays pending)

A request with the header `x-lab-oracle: 1` sees the truth at once and is never throttled:
that is how the tests read the end state. GET /lab-api/config shows the settings; GET /lab-api/stats counts requests and throttled
answers per service, action and account; GET /lab-api/limits shows the limits set, and
POST /lab-api/limits sets some for one account and region (JSON: {"account", "region",
"vcpus", "instances", "addresses", "volume-gib": {type: GiB}, "capacity": {zone: {type:
count}}, "not-offered": {zone: [type]}, "no-ena": [image], "terminated-listed": seconds,
"credentials": "invalid" (every service refuses the account's key, in every region),
"require-imdsv2": true (RunInstances without MetadataOptions.HttpTokens=required is
refused with UnauthorizedOperation, as an SCP on ec2:MetadataHttpTokens refuses it),
"no-default-vpc": true (the account has deleted the region's default VPC: DescribeVpcs
no longer shows it, and RunInstances without a subnet is refused with VPCIdNotSpecified),
"region-disabled": true (an opt-in region the account has not enabled: every request
there is refused as if the key were unknown, AuthFailure on EC2), "route53-insync":
seconds (how long the account's Route53 changes stay PENDING), "snapshot" and
"snapshot-copy": seconds per GiB (how long the account's snapshots, and copies made into
the region, stay pending), "snapshot-copies": copies pending at once into the region};
a key given replaces its
value, null removes it); /moto-api/reset also resets the lab's state.
The AMIs and key pairs that exist are read from the instance profiles in --profiles
(every `ami:` map, every `key-pair:`), so the lab's own profiles work and others do not.
"""

import argparse
import base64
import hashlib
import heapq
import io
import itertools
import json
import os
import pathlib
import random
import re
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter

PRESETS = {
    "test": "pending=1-2,stopping=1,shutting-down=1,volume-creating=1,volume-attaching=0.5,"
    "volume-deleting=1,table-creating=2,visibility=1,console=1-2,terminated-listed=600,"
    "route53-insync=1,snapshot=0.01,snapshot-copy=0.02,throttle=on",
    "realistic": "pending=20-40,stopping=15-30,shutting-down=10-20,volume-creating=2-5,"
    "volume-attaching=2-5,volume-deleting=2-5,table-creating=5-10,visibility=2-4,console=60-180,"
    "terminated-listed=3600,route53-insync=20-60,snapshot=0.5-1.5,snapshot-copy=1-3,throttle=on",
    "instant": "pending=0,stopping=0,shutting-down=0,volume-creating=0,volume-attaching=0,"
    "volume-deleting=0,table-creating=0,visibility=0,console=0,terminated-listed=600,"
    "route53-insync=0,snapshot=0,snapshot-copy=0,throttle=off",
}
KEYS = {
    "pending", "stopping", "shutting-down", "volume-creating", "volume-attaching",
    "volume-deleting", "table-creating", "visibility", "console", "terminated-listed", "route53-insync",
    "snapshot", "snapshot-copy", "throttle",
}


def parse_settings(text):
    """{"pending": (lo, hi), ..., "throttle": True} from a preset name or key=value list."""
    out = {}
    for part in PRESETS["test"].split(",") + PRESETS.get(text, text).split(","):
        if not part.strip():
            continue
        key, _, value = part.strip().partition("=")
        if key not in KEYS:
            sys.exit(f"labcloud: unknown CERVEZA_LAB_CLOUD key {key!r} (known: {', '.join(sorted(KEYS))})")
        if key == "throttle":
            if value not in ("on", "off"):
                sys.exit(f"labcloud: throttle={value!r}: use on or off")
            out[key] = value == "on"
            continue
        try:
            lo, _, hi = value.partition("-")
            lo, hi = float(lo), float(hi or lo)
        except ValueError:
            sys.exit(f"labcloud: {key}={value!r} is not seconds or a range like 20-40")
        if lo < 0 or hi < lo:
            sys.exit(f"labcloud: {key}={value!r}: want 0 <= low <= high")
        out[key] = (lo, hi)
    return out


def profile_resources(dirs):
    """AMIs per region and key pair names named by the instance profiles in `dirs`."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: (
        loader.construct_mapping(node) if isinstance(node, yaml.MappingNode)
        else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
        else loader.construct_scalar(node)))
    amis, keys = set(), set()
    for d in dirs:
        for path in sorted(pathlib.Path(d).glob("*.y*ml")):
            try:
                docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=Loader))
            except Exception as e:  # a broken profile is cerveza's to report
                print(f"labcloud: skipping {path}: {e}", file=sys.stderr)
                continue
            for doc in docs:
                aws = doc.get("aws") if isinstance(doc, dict) else None
                if not isinstance(aws, dict):
                    continue
                if isinstance(aws.get("ami"), dict):
                    amis.update((str(r), str(a)) for r, a in aws["ami"].items())
                if aws.get("key-pair"):
                    keys.add(str(aws["key-pair"]))
    return sorted(amis), sorted(keys)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True,
                    help="0: a free port, printed on stdout once it listens (no race for it)")
    ap.add_argument("--profiles", action="append", default=[])
    ap.add_argument("--host-keys", action="append", default=[],
                    help="public host key files the consoles show (read when asked)")
    args = ap.parse_args()
    settings = parse_settings(os.environ.get("CERVEZA_LAB_CLOUD", "test"))
    amis, keys = profile_resources(args.profiles)

    # moto reads these when it is imported.
    ami_file = tempfile.NamedTemporaryFile("w", suffix="-amis.json", delete=False)
    json.dump([{
        "ami_id": ami, "region": region, "name": f"lab image {ami} ({region})",
        "description": "an image the lab's instance profiles name", "owner_id": "099720109477",
        "public": True, "virtualization_type": "hvm", "architecture": "x86_64",
        "state": "available", "platform": None, "root_device_type": "ebs",
        "root_device_name": "/dev/sda1", "sriov": "simple", "hypervisor": "xen",
    } for region, ami in amis] + [{
        "ami_id": ami, "region": region, "name": name, "description": name,
        "owner_id": "099720109477", "public": True, "virtualization_type": "hvm",
        "architecture": arch, "state": "available", "platform": None, "root_device_type": "ebs",
        "root_device_name": "/dev/sda1", "sriov": "simple", "hypervisor": "xen",
    } for ami, (region, arch, name) in LAB_IMAGES.items()], ami_file)
    ami_file.close()
    os.environ["MOTO_AMIS_PATH"] = ami_file.name
    os.environ["MOTO_ENABLE_AMI_VALIDATION"] = "true"
    os.environ["MOTO_ENABLE_KEYPAIR_VALIDATION"] = "true"
    # Port 0: bound and listening here, before anyone is told; a caller that picked a
    # "free" port itself could lose it to another process, or connect to itself.
    listener = None
    if args.port == 0:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((args.host, 0))
        listener.listen(128)
        args.port = listener.getsockname()[1]
    os.environ.setdefault("MOTO_PORT", str(args.port))

    lab = Lab(settings, keys)
    lab.host_keys = args.host_keys
    lab.patch()
    from werkzeug.serving import make_server, run_simple
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

    app = DomainDispatcherApplication(create_backend_app)
    print(f"labcloud: {len(amis)} AMIs, key pairs {keys}, settings {lab.describe()}", file=sys.stderr)
    if listener is None:
        run_simple(args.host, args.port, lab.wsgi(app), threaded=True,
                   request_handler=MotoRequestHandler)
        return
    server = make_server(args.host, args.port, lab.wsgi(app), threaded=True,
                         request_handler=MotoRequestHandler, fd=listener.fileno())
    print(args.port, flush=True)
    sys.stdout = sys.stderr  # the caller may stop reading: nothing more goes there
    server.serve_forever()


# --- throttling: EC2's published buckets (docs.aws.amazon.com, "Request throttling for
# the Amazon EC2 API"): (capacity, refill per second).
EC2_NON_MUTATING = (100, 20)
EC2_UNFILTERED = (50, 10)
EC2_MUTATING = (50, 5)
EC2_UNFILTERED_ACTIONS = {
    "DescribeInstances", "DescribeInstanceStatus", "DescribeNetworkInterfaces",
    "DescribeSecurityGroups", "DescribeSnapshots", "DescribeSpotInstanceRequests",
    "DescribeVolumes",
}
EC2_RESOURCE_INTENSIVE = {
    "AcceptVpcPeeringConnection", "AuthorizeSecurityGroupIngress", "CancelSpotInstanceRequests",
    "CreateKeyPair", "CreateVpcPeeringConnection", "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection", "RevokeSecurityGroupIngress", "RequestSpotInstances",
}
EC2_UNCATEGORIZED = {
    "RunInstances": (5, 2), "StartInstances": (5, 2), "TerminateInstances": (100, 5),
    "CreateTags": (100, 10), "DeleteTags": (100, 10), "CreateVolume": (100, 5),
    "DeleteVolume": (100, 5), "CreateSnapshot": (100, 5), "DeleteSnapshot": (100, 5),
    "CreateNetworkInterface": (100, 5), "DeleteNetworkInterface": (100, 5),
}
# Resource buckets: tokens per instance the request names.
EC2_RESOURCE = {
    "RunInstances": (1000, 2), "StartInstances": (1000, 2),
    "StopInstances": (1000, 20), "TerminateInstances": (1000, 20),
}
ROUTE53 = (5, 5)  # five requests per second per account, all actions together
DYNAMODB_WRITES = (1000, 1000)  # one partition: 1,000 write units per second
DYNAMODB_READS = (3000, 3000)
S3_WRITES = (3500, 3500)  # per prefix per second
S3_READS = (5500, 5500)

SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")


class Bucket:
    def __init__(self, capacity, rate):
        self.capacity, self.rate = capacity, rate
        self.tokens, self.at = float(capacity), time.monotonic()

    def take(self, n, now):
        if now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


def new_stats():
    """What GET /lab-api/stats answers: requests and throttled answers per service:action,
    requests per account, and both per "account service:action" (a test's own account)."""
    return {"requests": Counter(), "throttled": Counter(), "by-account": Counter(),
            "requests-by-account": Counter(), "throttled-by-account": Counter(),
            "iam-by-account": Counter()}


class Lab:
    def __init__(self, settings, keys):
        self.settings = settings
        self.keys = keys
        self.lock = threading.RLock()  # one request at a time, as one consistent cloud
        self.due = []  # heap of (when, seq, fn): state changes to come
        self.seq = itertools.count()
        self.tokens = {}  # (account, region, action, token) -> (params, status, headers, body)
        self.buckets = {}
        self.stats = new_stats()
        self.action = None  # the EC2 action being served (requests are served one at a time)
        self.oracle = False  # the request is a test's check of the truth (x-lab-oracle: 1)
        self.req = None  # the request being served
        self.ebs_default = {}  # (account, region) -> {"enabled": bool, "key": str}
        self.limits = {}  # (account, region) -> {limit: value}, see POST /lab-api/limits
        self.dropped = set()  # volume ids EBS dropped (their tokens are spent)
        self.bucket_owners = {}  # S3 bucket -> the account id that created it
        self.changes = {}  # Route53 change id -> when it is INSYNC (monotonic)

    def describe(self):
        return {k: (v if isinstance(v, bool) else "-".join(dict.fromkeys(f"{x:g}" for x in v)))
                for k, v in sorted(self.settings.items())}

    # --- time ---------------------------------------------------------------------------
    def seconds(self, key):
        lo, hi = self.settings[key]
        return random.uniform(lo, hi)

    def later(self, key, fn):
        """Runs `fn` once the `key` duration has passed (at the next request after it)."""
        s = self.seconds(key)
        if s <= 0:
            fn()
        else:
            heapq.heappush(self.due, (time.monotonic() + s, next(self.seq), fn))

    def settle(self):
        now = time.monotonic()
        while self.due and self.due[0][0] <= now:
            heapq.heappop(self.due)[2]()

    def reset(self):
        self.ebs_default.clear()
        self.limits.clear()
        self.dropped.clear()
        self.due.clear()
        self.tokens.clear()
        self.buckets.clear()
        self.bucket_owners.clear()
        self.changes.clear()
        self.stats = new_stats()

    # --- KMS ------------------------------------------------------------------------------
    def ebs_settings(self):
        r = self.req
        return self.ebs_default.setdefault((r.account, r.region), {"enabled": False, "key": DEFAULT_EBS_KEY})

    def usable_key(self, key):
        """Whether EBS can use KMS key `key` (id, ARN, alias) in the request's region: the
        AWS managed key always; others when moto's KMS has them Enabled."""
        if key in (None, "", DEFAULT_EBS_KEY):
            return True
        from moto.kms.models import kms_backends
        for backends in list(kms_backends.values()):
            try:
                k = backends[self.req.region].describe_key(key)
            except Exception:  # noqa: BLE001 - not this account's key, or no such alias
                continue
            return k.key_state == "Enabled"
        return False

    def encryption_fails(self, encrypted, key):
        """The reason a new volume of this request cannot be encrypted, or None."""
        settings = self.ebs_settings()
        if not (encrypted or settings["enabled"]):
            return None
        key = key or settings["key"]
        return None if self.usable_key(key) else key

    # --- moto's models --------------------------------------------------------------------
    def patch(self):
        lab = self
        from moto.core.exceptions import ServiceException
        from moto.ec2.exceptions import EC2ClientError, InvalidInstanceIdError
        from moto.ec2.models import EC2Backend
        from moto.ec2.models import instances as inst_mod
        from moto.ec2.models.elastic_block_store import EBSBackend, Volume
        from moto.ec2.models.elastic_ip_addresses import ElasticAddressBackend
        from moto.ec2.models.instances import Instance, InstanceBackend
        from moto.ec2.models.amis import AmiBackend
        from moto.ec2.models.vpcs import VPCBackend
        from moto.ec2.exceptions import InvalidVPCIdError
        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table
        from moto.dynamodb.exceptions import ResourceNotFoundException

        codes = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
                 "stopping": 64, "stopped": 80}

        def set_state(i, name):
            i._state.name, i._state.code = name, codes[name]
            if name == "terminated":
                i._lab_gone_at = time.monotonic()

        def move(i, now, then, key):
            """Puts instance `i` in state `now`, and in `then` once `key` has passed."""
            i._lab_epoch = getattr(i, "_lab_epoch", 0) + 1
            epoch = i._lab_epoch
            set_state(i, now)

            def done():
                if i._lab_epoch == epoch:
                    set_state(i, then)
            lab.later(key, done)

        def incorrect(i, verb):
            return EC2ClientError(
                "IncorrectInstanceState",
                f"The instance '{i.id}' is not in a state from which it can be {verb}.")

        # Instances take time to start, stop and terminate.
        orig_init = Instance.__init__

        from moto.ec2.models.instances import StateReason

        def init(self, *a, **k):
            orig_init(self, *a, **k)
            self._lab_account = lab.req.account if lab.req is not None else None
            self._lab_visible = time.monotonic() + lab.seconds("visibility")
            self._lab_console = time.monotonic() + lab.seconds("console")
            # A test's account may have consoles posted later, without a key block, or
            # with a host key of each instance's own (see LIMIT_KEYS).
            lim = lab.limits.get((lab.req.account, lab.req.region), {}) if lab.req else {}
            if "console-delay" in lim:
                self._lab_console = time.monotonic() + float(lim["console-delay"])
            self._lab_console_keys = lim.get("console-keys", "lab")
            if self._lab_console_keys == "per-instance":
                from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
                from cryptography.hazmat.primitives import serialization
                self._lab_own_key = Ed25519PrivateKey.generate().public_key().public_bytes(
                    serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
            bad = lab.encryption_fails(False, None) if lab.action == "RunInstances" else None
            if bad is None:
                move(self, "pending", "running", "pending")
                return
            # EBS cannot encrypt its root volume: EC2 gives up on the launch.
            set_state(self, "pending")
            inst = self

            def die():
                inst.state_reason = StateReason(
                    "Client.InvalidKMSKey.InvalidState: The KMS key provided is in an incorrect state",
                    "Client.InvalidKMSKey.InvalidState")
                move(inst, "shutting-down", "terminated", "shutting-down")
            lab.later("pending", die)
        Instance.__init__ = init

        # IAM enforcement (INITIAL_NO_AUTH_ACTION_COUNT, moto's own): moto names no resource
        # for most actions ("*") and a bare "bucket/key" for S3, so a policy scoped to
        # resources would never match. The lab enforces actions: "*" matches any
        # Resource, and S3's resources get their ARN prefix.
        from moto.iam.access_control import IAMPolicyStatement, IAMRequestBase
        orig_matches = IAMPolicyStatement._check_element_matches
        # The key must be one IAM made (moto looks it up); the signature is the SDK's
        # business, and moto computes Route53's differently from the Rust SDK.
        IAMRequestBase.check_signature = lambda self: None
        # HeadBucket needs s3:ListBucket (there is no s3:HeadBucket permission: S3 API
        # Reference, HeadBucket); moto asks for the latter.
        from moto.s3.responses import ACTION_MAP
        ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"

        def matches(self, element, value):
            if element == "Resource":
                if value == "*":
                    return True
                if not value.startswith("arn:"):
                    value = "arn:aws:s3:::" + value
            return orig_matches(self, element, value)
        IAMPolicyStatement._check_element_matches = matches

        # Images their owner deprecated show when (DescribeImages' DeprecationTime).
        from moto.ec2.models.amis import Ami
        orig_ami_init = Ami.__init__

        def ami_init(self, *a, **k):
            orig_ami_init(self, *a, **k)
            self.deprecation_time = DEPRECATED_IMAGES.get(self.id)
        Ami.__init__ = ami_init

        # The console output: nothing until EC2 posts it, a while after boot; then the
        # boot log with cloud-init's host key block (cc_keys_to_console), carrying the
        # lab sshd's real public keys, as a real instance's console carries its own.
        from moto.ec2.responses.general import SAMPLE_CONSOLE_OUTPUT, General
        from moto.core.responses import ActionResult
        from moto.core.utils import utcnow
        from moto.ec2.utils import Base64EncodedString

        def get_console_output(self):
            i = self.ec2_backend.get_instance(self._get_param("InstanceId"))
            result = {"InstanceId": i.id, "Timestamp": utcnow()}
            mode = getattr(i, "_lab_console_keys", "lab")
            if time.monotonic() >= getattr(i, "_lab_console", 0) and mode == "none":
                # An image whose cloud-init does not print the keys (ssh_keys_to_console).
                result["Output"] = Base64EncodedString.from_raw_string(SAMPLE_CONSOLE_OUTPUT)
            elif time.monotonic() >= getattr(i, "_lab_console", 0):
                keys = []
                for f in lab.host_keys:
                    try:
                        kind, key = pathlib.Path(f).read_text().split()[:2]
                        keys.append(f"{kind} {key} root@{i.id}")
                    except (OSError, ValueError):
                        pass
                if mode == "per-instance":
                    keys = [f"{i._lab_own_key} root@{i.id}"]
                text = (SAMPLE_CONSOLE_OUTPUT
                        + "ec2: #############################################################\r\n"
                        + "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n"
                        + "ec2: -----END SSH HOST KEY FINGERPRINTS-----\r\n"
                        + "-----BEGIN SSH HOST KEY KEYS-----\r\n"
                        + "".join(k + "\r\n" for k in keys)
                        + "-----END SSH HOST KEY KEYS-----\r\n")
                result["Output"] = Base64EncodedString.from_raw_string(text)
            return ActionResult(result)
        General.get_console_output = get_console_output

        orig_start, orig_stop, orig_terminate = Instance.start, Instance.stop, Instance.terminate

        def power(verb, refused, acts_on, orig, now, then, key):
            """An instance action as EC2 does it: refused whole when one instance is in
            a state in `refused`; instances in `acts_on` go to `now`, then `then`."""
            def act(self, instance_ids):
                if not instance_ids:
                    raise EC2ClientError("InvalidParameterCombination", "No instances specified")
                found = self.get_multi_instances_by_id(instance_ids)
                for i in found:
                    if i.state in refused:
                        raise incorrect(i, verb)
                out = []
                for i in found:
                    previous = {"Code": i.state_code, "Name": i.state}
                    if i.state in acts_on:
                        orig(i)
                        move(i, now, then, key)
                    out.append((i, previous))
                return out
            return act

        def start_again(i):
            orig_start(i)
            # LaunchTime is "the time that the instance was last launched": a start
            # sets it again (moto keeps the first launch's).
            from moto.core.utils import utcnow
            i.launch_time = utcnow()

        InstanceBackend.start_instances = power(
            "started", ("stopping", "shutting-down", "terminated"), ("stopped",),
            start_again, "pending", "running", "pending")
        InstanceBackend.stop_instances = power(
            "stopped", ("pending", "shutting-down", "terminated"), ("running",),
            orig_stop, "stopping", "stopped", "stopping")
        InstanceBackend.terminate_instances = power(
            "terminated", (), ("pending", "running", "stopping", "stopped"),
            orig_terminate, "shutting-down", "terminated", "shutting-down")

        def reboot_instances(self, instance_ids):
            found = self.get_multi_instances_by_id(instance_ids)
            for i in found:
                if i.state != "running":
                    raise incorrect(i, "rebooted")
            return found
        InstanceBackend.reboot_instances = reboot_instances

        # An account without a default VPC does not see one (the lab's accounts share
        # moto's; each account's deletion is the lab's to keep).
        orig_describe_vpcs = VPCBackend.describe_vpcs

        def describe_vpcs(self, vpc_ids=None, filters=None):
            found = orig_describe_vpcs(self, vpc_ids, filters)
            if lab.oracle or lab.req is None or lab.action != "DescribeVpcs" \
                    or not lab.no_default_vpc(lab.req.account, lab.req.region):
                return found
            hidden = [v for v in found if v.is_default]
            if vpc_ids and hidden:
                raise InvalidVPCIdError(hidden[0].id)
            return [v for v in found if not v.is_default]
        VPCBackend.describe_vpcs = describe_vpcs

        # Eventual consistency: a new instance is invisible to reads for a while.
        orig_all = InstanceBackend.all_reservations

        def all_reservations(self, filters=None):
            if lab.oracle or lab.action == "RunInstances":  # its own look-ups see what it made
                return orig_all(self, filters)
            now = time.monotonic()
            out = []
            for r in orig_all(self, filters):
                seen = [i for i in r.instances if getattr(i, "_lab_visible", 0) <= now
                        and (not hasattr(i, "_lab_gone_at") or now < i._lab_gone_at + lab.listed_for(i))]
                if seen:
                    r.instances = seen
                    out.append(r)
            return out
        InstanceBackend.all_reservations = all_reservations

        # Volumes: creating -> available; attaching -> attached; deleting -> gone.
        orig_create_volume = EBSBackend.create_volume

        def create_volume(self, *a, **k):
            v = orig_create_volume(self, *a, **k)
            if lab.action != "CreateVolume":  # moto's own (an AMI's snapshot)
                return v
            v._lab_account = lab.req.account
            v._lab_creating = True
            form = lab.req.form
            bad = lab.encryption_fails(form.get("Encrypted") == "true", form.get("KmsKeyId"))
            backend = self

            def done():
                if bad is None:
                    v._lab_creating = False
                else:  # EBS drops a volume it cannot encrypt
                    backend.volumes.pop(v.id, None)
                    lab.dropped.add(v.id)
            lab.later("volume-creating", done)
            return v
        EBSBackend.create_volume = create_volume

        # Snapshots: pending for `snapshot` seconds per GiB (a copy: `snapshot-copy`),
        # then completed; at most 5 pending per volume; a copy per destination region at
        # most 20 at once (EBS quotas); CreateSnapshots copies each volume's tags when
        # asked (CopyTagsFromSource=volume) and leaves out ExcludeDataVolumeIds.
        from moto.ec2.models.elastic_block_store import Snapshot
        orig_snapshot_init = Snapshot.__init__

        def snapshot_init(self, *a, **k):
            orig_snapshot_init(self, *a, **k)
            if lab.action not in ("CreateSnapshot", "CreateSnapshots", "CopySnapshot") \
                    or getattr(self, "from_ami", None):
                return  # moto's own: an AMI's (made when a region's backend first answers)
            self.status = "pending"
            self._lab_account = lab.req.account
            self._lab_copy = lab.action == "CopySnapshot"
            size = float(getattr(self.volume, "size", 1) or 1)
            key = "snapshot-copy" if self._lab_copy else "snapshot"
            lim = lab.limits.get((lab.req.account, lab.req.region)) or {}
            per_gib = float(lim[key]) if key in lim else lab.seconds(key)
            snap = self

            def done():
                snap.status = "completed"
            heapq.heappush(lab.due, (time.monotonic() + per_gib * size,
                                     next(lab.seq), done))
        Snapshot.__init__ = snapshot_init
        Snapshot.progress = property(lambda self: "100%" if self.status == "completed" else "0%")

        def create_snapshots(self, instance_spec, description, tags):
            form = lab.req.form
            instance = self.get_instance(instance_spec["InstanceId"])
            exclude = {v for k, v in form.items()
                       if k.startswith("InstanceSpecification.ExcludeDataVolumeIds.")}
            no_boot = str(instance_spec.get("ExcludeBootVolume", False)).lower() == "true"
            volumes = [m.volume_id for name, m in instance.get_block_device_mapping
                       if not (no_boot and name == instance.root_device_name)
                       and m.volume_id not in exclude]
            out = []
            for v in volumes:
                snap = self.create_snapshot(v, description=description)
                if form.get("CopyTagsFromSource") == "volume":
                    snap.add_tags({t["key"]: t["value"] for t in self.get_volume(v).get_tags()})
                snap.add_tags(tags)
                out.append(snap)
            return out
        EBSBackend.create_snapshots = create_snapshots

        def volume_status(self):
            if getattr(self, "_lab_deleting", False):
                return "deleting"
            if getattr(self, "_lab_creating", False):
                return "creating"
            return "in-use" if self.attachment else "available"
        Volume.status = property(volume_status)

        orig_attach = EBSBackend.attach_volume

        def attach_volume(self, volume_id, instance_id, device_path, delete_on_termination=False):
            if lab.action != "AttachVolume":
                return orig_attach(self, volume_id, instance_id, device_path, delete_on_termination)
            v = self.get_volume(volume_id)
            i = self.get_instance(instance_id)
            if v.status != "available":
                raise EC2ClientError("IncorrectState", f"{volume_id} is not 'available'.")
            if i.state not in ("running", "stopped"):
                raise EC2ClientError("IncorrectInstanceState",
                                     f"Instance '{instance_id}' is not 'running'.")
            att = orig_attach(self, volume_id, instance_id, device_path, delete_on_termination)
            att.status = "attaching"

            def done():
                if v.attachment is att:
                    att.status = "attached"
            lab.later("volume-attaching", done)
            return att
        EBSBackend.attach_volume = attach_volume

        orig_delete_volume = EBSBackend.delete_volume

        def delete_volume(self, volume_id):
            if lab.action != "DeleteVolume":
                return orig_delete_volume(self, volume_id)
            v = self.get_volume(volume_id)
            if v.status == "creating":
                raise EC2ClientError("IncorrectState", f"The volume '{volume_id}' is 'creating'.")
            if getattr(v, "_lab_deleting", False):
                return v
            if v.attachment:  # moto's own check and error
                return orig_delete_volume(self, volume_id)
            v._lab_deleting = True

            def done():
                self.volumes.pop(volume_id, None)
                # Its ClientToken now answers IdempotentParameterMismatch ("associated
                # with a resource that is already deleted"), as it does for a dropped one.
                lab.dropped.add(volume_id)
            lab.later("volume-deleting", done)
            return v
        EBSBackend.delete_volume = delete_volume

        # An Elastic IP cannot be associated with a pending instance.
        orig_associate = ElasticAddressBackend.associate_address

        def associate_address(self, instance=None, *a, **k):
            if instance is not None and instance.state != "running":
                raise EC2ClientError(
                    "InvalidInstanceID",
                    f"The {instance.state} instance '{instance.id}' is not in a valid state for this operation.")
            return orig_associate(self, instance, *a, **k)
        ElasticAddressBackend.associate_address = associate_address

        orig_allocate = ElasticAddressBackend.allocate_address

        def allocate_address(self, *a, **k):
            addr = orig_allocate(self, *a, **k)
            addr._lab_account = lab.req.account if lab.action == "AllocateAddress" else None
            return addr
        ElasticAddressBackend.allocate_address = allocate_address

        # AMIs exist in their own region only.
        orig_load_amis = AmiBackend._load_amis

        def load_amis(self):
            from moto.ec2.models import amis as amis_mod
            everything = amis_mod.AMIS
            amis_mod.AMIS = [{k: v for k, v in a.items() if k != "region"}
                             for a in everything if a.get("region") in (None, self.region_name)]
            try:
                orig_load_amis(self)
            finally:
                amis_mod.AMIS = everything
        AmiBackend._load_amis = load_amis

        # The profiles' key pairs exist in every region (made again after a reset).
        orig_backend_init = EC2Backend.__init__

        def backend_init(self, *a, **k):
            orig_backend_init(self, *a, **k)
            for name in lab.keys:
                self.create_key_pair(name, "ed25519", tags={})
        EC2Backend.__init__ = backend_init

        # DynamoDB: a new table is CREATING for a while; items cannot be used until ACTIVE.
        orig_create_table = DynamoDBBackend.create_table

        def create_table(self, name, **params):
            t = orig_create_table(self, name, **params)
            t._lab_creating = True

            def done():
                t._lab_creating = False
            lab.later("table-creating", done)
            return t
        DynamoDBBackend.create_table = create_table

        orig_describe = Table.describe

        def describe(self, base_key="TableDescription"):
            d = orig_describe(self, base_key)
            if getattr(self, "_lab_creating", False):
                d[base_key]["TableStatus"] = "CREATING"
            replicas = getattr(self, "_lab_replicas", [])
            if replicas:
                d[base_key]["Replicas"] = [{"RegionName": r, "ReplicaStatus": "ACTIVE"} for r in replicas]
                d[base_key]["MultiRegionConsistency"] = self._lab_consistency
            return d
        Table.describe = describe

        # Global tables: moto ignores UpdateTable's ReplicaUpdates. Here they are kept on
        # the table and shown by DescribeTable (Replicas, MultiRegionConsistency), which is
        # what readers of a global table see; the replicas hold no data.
        from moto.dynamodb.responses import DynamoHandler
        orig_update_table = DynamoHandler.update_table

        def update_table(self):
            body = self.body
            updates = body.get("ReplicaUpdates") or []
            if updates:
                t = self.dynamodb_backend.get_table(body["TableName"])
                replicas = list(getattr(t, "_lab_replicas", []))
                for u in updates:
                    if "Create" in u and u["Create"]["RegionName"] not in replicas:
                        replicas.append(u["Create"]["RegionName"])
                    if "Delete" in u:
                        replicas = [r for r in replicas if r != u["Delete"]["RegionName"]]
                t._lab_replicas = replicas
                t._lab_consistency = body.get("MultiRegionConsistency", "EVENTUAL")
            return orig_update_table(self)
        DynamoHandler.update_table = update_table

        def not_while_creating(method):
            orig = getattr(DynamoDBBackend, method)

            def wrapped(self, table_name, *a, **k):
                t = self.tables.get(table_name)
                if t is not None and getattr(t, "_lab_creating", False):
                    raise ResourceNotFoundException()
                return orig(self, table_name, *a, **k)
            setattr(DynamoDBBackend, method, wrapped)
        for m in ("put_item", "get_item", "update_item", "delete_item", "query", "scan"):
            not_while_creating(m)

        self.ServiceException = ServiceException
        del inst_mod, InvalidInstanceIdError  # imported to fail early if moto moved them

    # --- capacity and quotas ---------------------------------------------------------------
    def set_limits(self, body):
        account, region = str(body.pop("account")), str(body.pop("region"))
        unknown = set(body) - LIMIT_KEYS
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)} (known: {sorted(LIMIT_KEYS)})")
        lim = self.limits.setdefault((account, region), {})
        for key, value in body.items():
            if value is None:
                lim.pop(key, None)
            else:
                lim[key] = value

    def s3_owned(self, req, environ, app, start_response):
        """S3 bucket names are global and each bucket has an owner: CreateBucket of a name
        another account owns is BucketAlreadyExists (409); a request whose
        ExpectedBucketOwner is not the owner is AccessDenied (403). A bucket of another
        account is otherwise open, as a squatter's bucket policy would leave it."""
        bucket = req.path.lstrip("/").split("/", 1)[0]
        owner, me = self.bucket_owners.get(bucket), account_id(req.account)
        creating = req.method == "PUT" and req.path.strip("/") == bucket \
            and not environ.get("QUERY_STRING")
        expected = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
        if owner is not None and creating and owner != me:
            return s3_error(start_response, 409, "BucketAlreadyExists",
                            "The requested bucket name is not available. The bucket namespace is "
                            "shared by all users of the system. Please select a different name "
                            "and try again.", req.method)
        if owner is not None and expected is not None and expected != owner:
            return s3_error(start_response, 403, "AccessDenied", "Access Denied", req.method)
        if not creating or owner is not None:
            return app(environ, start_response)
        answered = {}

        def capture(status, headers, exc_info=None):
            answered["status"] = status
            return start_response(status, headers, exc_info)
        chunks = list(app(environ, capture))
        if answered.get("status", "").startswith("200"):
            self.bucket_owners[bucket] = me
        return chunks

    def resolve_ssm(self, req):
        """The AMI a `resolve:ssm:<parameter>` image names in the request's region, or
        (status, code, message) when the parameter does not exist there."""
        name = req.form["ImageId"][len("resolve:ssm:"):]
        ami = PUBLIC_PARAMETERS.get(name, {}).get(req.region)
        if ami is None:
            return (400, "InvalidParameterValue",
                    f"Invalid value '{req.form['ImageId']}' for parameter imageId: the Systems "
                    f"Manager parameter {name} does not exist in {req.region}, or is not of "
                    "data type aws:ec2:image.")
        return ami

    def route53_change(self, req, environ, app, start_response):
        """Route53 changes are PENDING until the authoritative servers have them, then
        INSYNC (GetChange): each ChangeResourceRecordSets answers a change id of its own
        and PENDING; GetChange of it says INSYNC `route53-insync` seconds later. None for
        the other Route53 requests (moto answers them)."""
        path = req.path
        change = re.fullmatch(r"/2013-04-01/change/([A-Z0-9]+)", path)
        if req.method == "GET" and change and change.group(1) in self.changes:
            done = time.monotonic() >= self.changes[change.group(1)]
            body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<GetChangeResponse '
                    f'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo>'
                    f"<Id>/change/{change.group(1)}</Id><Status>{'INSYNC' if done else 'PENDING'}</Status>"
                    f"<SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>").encode()
            return xml_answer(start_response, "200 OK", body)
        if not (req.method == "POST" and re.fullmatch(r"/2013-04-01/hostedzone/[^/]+/rrset/?", path)):
            return None
        answered = {}

        def capture(status, headers, exc_info=None):
            answered["status"], answered["headers"] = status, headers
        body = b"".join(app(environ, capture))
        if answered.get("status", "").startswith("200"):
            cid = "C" + "".join(random.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(13))
            self.changes[cid] = time.monotonic() + self.insync_after(req.account)
            body = re.sub(rb"<Id>/change/[^<]*</Id>", f"<Id>/change/{cid}</Id>".encode(), body)
            body = body.replace(b"<Status>INSYNC</Status>", b"<Status>PENDING</Status>")
        headers = [(k, v) for k, v in answered.get("headers", []) if k.lower() != "content-length"]
        start_response(answered.get("status", "500 Internal Server Error"),
                       headers + [("Content-Length", str(len(body)))])
        return [body]

    def no_default_vpc(self, account, region):
        return bool((self.limits.get((account, region)) or {}).get("no-default-vpc"))

    def snapshot_refusal(self, req):
        """(status, code, message) EBS answers a snapshot beyond its limits, or a volume
        made from a snapshot that is not completed yet; None otherwise."""
        form, backend = req.form, self.ec2_backend(req.region)
        pending = [s for s in backend.snapshots.values() if s.status == "pending"]
        if req.action in ("CreateSnapshot", "CreateSnapshots"):
            if req.action == "CreateSnapshot":
                volumes = [form.get("VolumeId", "")]
            else:
                try:
                    inst = backend.get_instance(form.get("InstanceSpecification.InstanceId", ""))
                except Exception:  # noqa: BLE001 - moto answers InvalidInstanceID itself
                    return None
                volumes = [m.volume_id for _, m in inst.get_block_device_mapping]
            for v in volumes:
                if sum(1 for s in pending if getattr(s.volume, "id", None) == v) >= 5:
                    return (400, "ConcurrentSnapshotLimitExceeded",
                            "You've reached the limit on the number of concurrent snapshots you can "
                            f"create on the specified volume ({v}). Wait until the 'CreateSnapshot' "
                            "requests that are in progress finish, and then try again.")
        if req.action == "CopySnapshot":
            # Only a completed snapshot can be copied (EBS user guide, "Copy an Amazon
            # EBS snapshot": "After you create a snapshot, and it has reached the
            # completed state, you can create a copy of it").
            source = self.ec2_backend(form.get("SourceRegion") or req.region).snapshots.get(
                form.get("SourceSnapshotId", ""))
            if source is not None and source.status != "completed":
                return (400, "IncorrectState", f"Snapshot is in invalid state - {source.status}")
            lim = (self.limits.get((req.account, req.region)) or {}).get("snapshot-copies", 20)
            copying = sum(1 for s in pending if getattr(s, "_lab_copy", False)
                          and getattr(s, "_lab_account", None) == req.account)
            if copying >= lim:
                return (400, "ResourceLimitExceeded",
                        f"You have exceeded an Amazon EC2 resource limit: {copying} snapshot copies "
                        f"are in progress in {req.region} (at most {lim} at once).")
        if req.action == "CreateVolume" and form.get("SnapshotId"):
            snap = backend.snapshots.get(form["SnapshotId"])
            if snap is not None and snap.status != "completed":
                return (400, "IncorrectState", f"Snapshot is in invalid state - {snap.status}")
        return None

    def launch_refusal(self, req):
        """(status, code, message) EC2 answers a launch of an instance type the zone does
        not offer, or of an image of another architecture than the type; None otherwise."""
        if req.action != "RunInstances":
            return None
        form, backend = req.form, self.ec2_backend(req.region)
        itype = form.get("InstanceType", "m1.small")
        zone = form.get("Placement.AvailabilityZone")
        subnet_id = form.get("SubnetId") or form.get("NetworkInterface.1.SubnetId")
        if not zone and subnet_id:
            try:
                zone = backend.get_subnet(subnet_id).availability_zone
            except Exception:  # noqa: BLE001 - moto answers InvalidSubnetID.NotFound itself
                return None
        try:
            types = backend.describe_instance_types([itype])
        except Exception:  # noqa: BLE001 - moto answers InvalidInstanceType itself
            return None
        if zone:
            offered = sorted(o["Location"] for o in backend.describe_instance_type_offerings(
                "availability-zone", {"instance-type": [itype]}))
            if zone not in offered:
                return (400, "Unsupported",
                        f"Your requested instance type ({itype}) is not supported in your requested "
                        f"Availability Zone ({zone}). Please retry your request by not specifying an "
                        f"Availability Zone or choosing {', '.join(offered)}.")
        try:
            image = backend.describe_images(ami_ids=[form.get("ImageId", "")])[0]
        except Exception:  # noqa: BLE001 - moto answers InvalidAMIID.NotFound itself
            return None
        archs = types[0]["ProcessorInfo"]["SupportedArchitectures"]
        if image.architecture and image.architecture not in archs:
            return (400, "InvalidParameterValue",
                    f"The architecture '{archs[0]}' of the specified instance type does not match "
                    f"the architecture '{image.architecture}' of the specified AMI. Specify an "
                    "instance type and an AMI that have matching architectures, and try again. You "
                    "can use 'describe-instance-types' or 'describe-images' to discover the "
                    "architecture of the instance type or AMI.")
        return None

    def network_refusal(self, req):
        """(status, code, message) EC2 answers a launch whose network it cannot use; None
        when the network is fine (or for moto's own errors, such as an unknown subnet)."""
        if req.action != "RunInstances":
            return None
        form = req.form
        subnet_id = form.get("SubnetId") or form.get("NetworkInterface.1.SubnetId")
        names = [v for k, v in form.items() if re.fullmatch(r"SecurityGroup\.\d+", k)]
        ids = [v for k, v in form.items()
               if re.fullmatch(r"(NetworkInterface\.1\.)?SecurityGroupId\.\d+", k)]
        no_default = self.no_default_vpc(req.account, req.region)
        if not subnet_id:
            if no_default:
                return (400, "VPCIdNotSpecified", "No default VPC for this user. GroupName is "
                        "only supported for EC2-Classic and default VPC.")
            return None
        backend = self.ec2_backend(req.region)
        try:
            subnet = backend.get_subnet(subnet_id)
        except Exception:  # noqa: BLE001 - moto answers InvalidSubnetID.NotFound itself
            return None
        vpc = backend.vpcs.get(subnet.vpc_id)
        if names and (no_default or vpc is None or not vpc.is_default):
            return (400, "InvalidParameterCombination",
                    "The parameter groupName cannot be used with the parameter subnet")
        for g in ids:
            sg = backend.get_security_group_from_id(g)
            if sg is not None and sg.vpc_id != subnet.vpc_id:
                return (400, "InvalidParameter",
                        f"Security group {g} and subnet {subnet_id} belong to different networks.")
        return None

    def credentials_refused(self, req):
        """Whether the request's access key is one the lab was told AWS does not know, or
        the request goes to a region the account has not enabled (an opt-in region: AWS
        answers there as if the key were unknown)."""
        return any(a == req.account and lim.get("credentials") == "invalid"
                   for (a, _), lim in self.limits.items()) \
            or bool((self.limits.get((req.account, req.region)) or {}).get("region-disabled"))

    def insync_after(self, account):
        """How long a Route53 change of `account` stays PENDING."""
        for (a, _), lim in self.limits.items():
            if a == account and "route53-insync" in lim:
                return float(lim["route53-insync"])
        return self.seconds("route53-insync")

    def listed_for(self, instance):
        """How long a terminated instance stays in the listings of its account."""
        acct = getattr(instance, "_lab_account", None)
        for (a, _), lim in self.limits.items():
            if a == acct and "terminated-listed" in lim:
                return float(lim["terminated-listed"])
        return self.seconds("terminated-listed")

    def ec2_backend(self, region):
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.ec2.models import ec2_backends
        return ec2_backends[DEFAULT_ACCOUNT_ID][region]

    def limit_refusal(self, req):
        """(status, code, message) EC2 refuses this request with for capacity, what a zone
        or image offers, or an account quota; None when no limit is reached."""
        lim = self.limits.get((req.account, req.region))
        if not lim or req.action not in LIMITED_ACTIONS:
            return None
        backend = self.ec2_backend(req.region)
        form = req.form

        def mine(things):
            return [t for t in things if getattr(t, "_lab_account", None) == req.account]
        if req.action == "CreateVolume":
            kind, size = form.get("VolumeType", "gp2"), int(form.get("Size", "0") or 0)
            quota = (lim.get("volume-gib") or {}).get(kind)
            used = sum(v.size for v in mine(backend.volumes.values())
                       if v.volume_type == kind and not getattr(v, "_lab_deleting", False))
            if quota is not None and used + size > quota:
                return (400, "VolumeLimitExceeded",
                        f"You have exceeded your maximum {kind} storage limit of {quota} GiB in this region.")
            return None
        if req.action == "AllocateAddress":
            quota = lim.get("addresses")
            if quota is not None and len(mine(backend.addresses)) + 1 > quota:
                return (400, "AddressLimitExceeded", "The maximum number of addresses has been reached.")
            return None
        if req.action == "RunInstances" and lim.get("require-imdsv2") \
                and form.get("MetadataOptions.HttpTokens") != "required":
            # What an SCP or IAM condition on ec2:MetadataHttpTokens answers, with the
            # encoded message sts:DecodeAuthorizationMessage turns into the reason.
            return (403, "UnauthorizedOperation",
                    "You are not authorized to perform this operation. User: lab is not authorized "
                    "to perform: ec2:RunInstances because no service control policy allows it "
                    "(ec2:MetadataHttpTokens is not \"required\"). Encoded authorization failure "
                    "message: " + encode_denial(req, "ec2:RunInstances", {
                        "ec2:metadatahttptokens": form.get("MetadataOptions.HttpTokens", "")}))
        if req.action == "RunInstances":
            itype = form.get("InstanceType", "m1.small")
            zone = form.get("Placement.AvailabilityZone") or req.region + "a"
            wanted = [(itype, zone)] * int(form.get("MinCount", "1"))
            if form.get("ImageId") in (lim.get("no-ena") or []) and not itype.startswith(ENA_OPTIONAL):
                return (400, "InvalidParameterCombination",
                        f"Enhanced networking with the Elastic Network Adapter (ENA) is required for the "
                        f"'{itype}' instance type. Ensure that you are using an AMI that is enabled for ENA.")
        else:
            ids = [v for k, v in form.items() if k.startswith("InstanceId.")]
            try:
                found = backend.get_multi_instances_by_id(ids)
            except Exception:  # noqa: BLE001 - moto's own error follows
                return None
            wanted = [(i.instance_type, i._placement.zone) for i in found if i.state == "stopped"]
        everything = [i for r in backend.reservations.values() for i in r.instances]  # seen or not
        running = [i for i in mine(everything) if i.state in ("pending", "running")]
        zones = [z.name for z in backend.describe_availability_zones()]

        def elsewhere(itype, zone):
            offered = {o["Location"] for o in backend.describe_instance_type_offerings(
                "availability-zone", {"instance-type": [itype]})}
            ok = [z for z in zones if z != zone and z in offered
                  and itype not in (lim.get("not-offered") or {}).get(z, [])
                  and (lim.get("capacity") or {}).get(z, {}).get(itype) != 0]
            return ", ".join(ok)
        for itype, zone in dict.fromkeys(wanted):
            if itype in (lim.get("not-offered") or {}).get(zone, []):
                return (400, "Unsupported",
                        f"Your requested instance type ({itype}) is not supported in your requested "
                        f"Availability Zone ({zone}). Please retry your request by not specifying an "
                        f"Availability Zone or choosing {elsewhere(itype, zone)}.")
            cap = (lim.get("capacity") or {}).get(zone, {}).get(itype)
            here = sum(1 for i in running if i.instance_type == itype and i._placement.zone == zone)
            if cap is not None and here + wanted.count((itype, zone)) > cap:
                if req.action == "StartInstances":
                    return (500, "InsufficientInstanceCapacity", "Insufficient capacity.")
                return (500, "InsufficientInstanceCapacity",
                        f"We currently do not have sufficient {itype} capacity in the Availability Zone "
                        f"you requested ({zone}). Our system will be working on provisioning additional "
                        f"capacity. You can currently get {itype} capacity by not specifying an "
                        f"Availability Zone in your request or choosing {elsewhere(itype, zone)}.")
        quota = lim.get("vcpus")
        if quota is not None:
            used = sum(vcpus(i.instance_type) for i in running)
            if used + sum(vcpus(t) for t, _ in wanted) > quota:
                return (400, "VcpuLimitExceeded",
                        f"You have requested more vCPU capacity than your current vCPU limit of {quota} "
                        "allows for the instance bucket that the specified instance type belongs to. "
                        "Please visit http://aws.amazon.com/contact-us/ec2-request to request an "
                        "adjustment to this limit.")
        quota = lim.get("instances")
        if quota is not None and len(running) + len(wanted) > quota:
            return (400, "InstanceLimitExceeded",
                    f"Your quota allows for {max(0, quota - len(running))} more running instance(s). "
                    f"You requested at least {len(wanted)}.")
        return None

    # --- the HTTP layer: throttling, idempotency, user-data -------------------------------
    def wsgi(self, app):
        lab = self

        def handler(environ, start_response):
            path = environ.get("PATH_INFO", "")
            if path.startswith("/lab-api/"):
                return lab.lab_api(path, environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            req = Request(environ, body)
            with lab.lock:
                lab.action = None
                lab.oracle = environ.get("HTTP_X_LAB_ORACLE") == "1"
                lab.settle()
                if path.startswith("/moto-api/reset"):
                    lab.reset()
                    return app(environ, start_response)
                if req.service == "?":
                    return app(environ, start_response)
                if not lab.oracle:
                    lab.stats["requests"][f"{req.service}:{req.action}"] += 1
                    lab.stats["by-account"][req.account] += 1
                    lab.stats["requests-by-account"][f"{req.account} {req.service}:{req.action}"] += 1
                    lab.stats["iam-by-account"][f"{req.account} {req.iam_action()}"] += 1
                    if lab.credentials_refused(req):
                        return refused_credentials(req, start_response)
                if lab.settings["throttle"] and not lab.oracle and not lab.admit(req):
                    lab.stats["throttled"][f"{req.service}:{req.action}"] += 1
                    lab.stats["throttled-by-account"][f"{req.account} {req.service}:{req.action}"] += 1
                    return throttled(req, start_response)
                lab.action = req.action if req.service == "ec2" else None
                lab.req = req
                if req.service == "sts" and req.action == "GetCallerIdentity":
                    return caller_identity(req, start_response)
                if req.service == "sts" and req.action == "DecodeAuthorizationMessage":
                    return decode_denial(req, start_response)
                if req.service == "s3" and not lab.oracle:
                    return lab.s3_owned(req, environ, app, start_response)
                if req.service == "route53" and not lab.oracle:
                    answered = lab.route53_change(req, environ, app, start_response)
                    if answered is not None:
                        return answered
                if req.service == "ec2" and req.action == "RunInstances" \
                        and req.form.get("ImageId", "").startswith("resolve:ssm:"):
                    resolved = lab.resolve_ssm(req)
                    if isinstance(resolved, tuple):
                        return ec2_error(*resolved)(start_response)
                    # EC2 launches the image the parameter names, and shows its id.
                    req.form["ImageId"] = resolved
                    body = urllib.parse.urlencode(req.form).encode()
                    environ["wsgi.input"] = io.BytesIO(body)
                    environ["CONTENT_LENGTH"] = str(len(body))
                if req.service == "ec2":
                    early = lab.ec2_checks(req)
                    if early:
                        return early(start_response)
                    key = req.token_key()
                    if key:
                        return lab.idempotent(key, req, app, environ, start_response)
                return app(environ, start_response)
        return handler

    def lab_api(self, path, environ, start_response):
        with self.lock:
            if path == "/lab-api/config":
                body = {"settings": self.describe(), "key_pairs": self.keys}
            elif path == "/lab-api/stats":
                body = {k: dict(v) for k, v in self.stats.items()}
            elif path == "/lab-api/limits":
                if environ.get("REQUEST_METHOD") == "POST":
                    length = int(environ.get("CONTENT_LENGTH") or 0)
                    try:
                        self.set_limits(json.loads(environ["wsgi.input"].read(length) or b"{}"))
                    except (ValueError, TypeError, KeyError) as e:
                        start_response("400 Bad Request", [("Content-Type", "text/plain")])
                        return [f"bad limits: {e}\n".encode()]
                body = {f"{a} {r}": v for (a, r), v in sorted(self.limits.items())}
            else:
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"unknown lab-api path\n"]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body, indent=1).encode()]

    def bucket(self, key, spec):
        b = self.buckets.get(key)
        if b is None:
            b = self.buckets[key] = Bucket(*spec)
        return b

    def admit(self, req):
        """Takes the request's tokens from its buckets; False when one is empty."""
        now = time.monotonic()
        wanted = []
        acct, region, action = req.account, req.region, req.action
        if req.service == "ec2":
            if action in EC2_UNCATEGORIZED:
                spec = EC2_UNCATEGORIZED[action]
            elif action.startswith(("Describe", "List", "Search", "Get")):
                unfiltered = not any(k.startswith("Filter.") or k == "MaxResults" for k in req.form)
                spec = EC2_UNFILTERED if action in EC2_UNFILTERED_ACTIONS and unfiltered else EC2_NON_MUTATING
            elif action in EC2_RESOURCE_INTENSIVE:
                spec = EC2_MUTATING
            else:
                spec = EC2_MUTATING
            wanted.append(((acct, region, "ec2", action), spec, 1))
            if action in EC2_RESOURCE:
                n = int(req.form.get("MaxCount", "1")) if action == "RunInstances" else max(
                    1, sum(1 for k in req.form if k.startswith("InstanceId.")))
                wanted.append(((acct, region, "ec2-resource", action), EC2_RESOURCE[action], n))
        elif req.service == "route53":
            wanted.append(((acct, "global", "route53"), ROUTE53, 1))
        elif req.service == "dynamodb":
            table = req.json.get("TableName", "") if isinstance(req.json, dict) else ""
            reads = action in ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems")
            writes = action in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem",
                                "TransactWriteItems")
            if reads or writes:
                spec = DYNAMODB_READS if reads else DYNAMODB_WRITES
                wanted.append(((acct, region, "dynamodb", table, reads), spec, 1))
        elif req.service == "s3":
            bucket = req.path.lstrip("/").split("/", 1)[0]
            reads = req.method in ("GET", "HEAD")
            wanted.append(((acct, region, "s3", bucket, reads), S3_READS if reads else S3_WRITES, 1))
        buckets = [(self.bucket(k, spec), n) for k, spec, n in wanted]
        # All or nothing: a refused request spends no token.
        for b, _ in buckets:
            b.take(0, now)
        if any(b.tokens < n for b, n in buckets):
            return False
        for b, n in buckets:
            b.take(n, now)
        return True

    def ec2_checks(self, req):
        """Errors EC2 gives before doing anything, and the account settings the lab keeps
        itself (per account, where moto has one); a callable answer, or None."""
        settings = self.ebs_settings()
        if req.action in ("EnableEbsEncryptionByDefault", "DisableEbsEncryptionByDefault"):
            settings["enabled"] = req.action.startswith("Enable")
        if req.action in ("EnableEbsEncryptionByDefault", "DisableEbsEncryptionByDefault",
                          "GetEbsEncryptionByDefault"):
            return ec2_ok(req.action, {"ebsEncryptionByDefault": str(settings["enabled"]).lower()})
        if req.action == "ModifyEbsDefaultKmsKeyId":
            settings["key"] = req.form.get("KmsKeyId", DEFAULT_EBS_KEY)
        if req.action == "ResetEbsDefaultKmsKeyId":
            settings["key"] = DEFAULT_EBS_KEY
        if req.action in ("ModifyEbsDefaultKmsKeyId", "ResetEbsDefaultKmsKeyId",
                          "GetEbsDefaultKmsKeyId"):
            return ec2_ok(req.action, {"kmsKeyId": settings["key"]})
        if req.action == "CreateVolume":
            refused = volume_refusal(req.form)
            zone = req.form.get("AvailabilityZone", "")
            if not refused and zone not in {
                    z.name for z in self.ec2_backend(req.region).describe_availability_zones()}:
                # EC2 makes no volume in a zone its region does not have; moto does.
                refused = ("InvalidZone.NotFound", f"The zone '{zone}' does not exist.")
            if refused:
                return ec2_error(400, *refused)
        refused = self.limit_refusal(req) or self.network_refusal(req) or self.launch_refusal(req) \
            or self.snapshot_refusal(req)
        if refused:
            return ec2_error(*refused)
        if req.action == "RunInstances" and "UserData" in req.form:
            try:
                raw = base64.b64decode(req.form["UserData"], validate=False)
            except ValueError:
                raw = b""
            if len(raw) > 16384:
                return ec2_error(400, "InvalidParameterValue",
                                 f"User data is limited to 16384 bytes (this request has {len(raw)})")
        return None

    def idempotent(self, key, req, app, environ, start_response):
        """EC2's ClientToken: the same token answers what the first call made."""
        params = req.params_without_token()
        seen = self.tokens.get(key)
        if seen is not None:
            made = re.search(rb"<volumeId>(vol-[0-9a-f]+)</volumeId>", b"".join(seen[3]))
            if seen[0] != params or (made and made.group(1).decode() in self.dropped):
                return ec2_error(400, "IdempotentParameterMismatch",
                                 "The client token you have provided is associated with a resource "
                                 "that is already deleted or with different parameters. Use a "
                                 "different client token.")(start_response)
            status, headers, chunks = seen[1:]
            start_response(status, headers)
            return chunks
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return start_response(status, headers, exc_info)
        chunks = list(app(environ, capture))
        if captured.get("status", "").startswith("200"):
            self.tokens[key] = (params, captured["status"], captured["headers"], chunks)
        return chunks


class Request:
    def __init__(self, environ, body):
        self.method = environ.get("REQUEST_METHOD", "GET")
        self.path = environ.get("PATH_INFO", "")
        m = SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        self.account, self.region, self.service = m.groups() if m else ("?", "?", "?")
        self.form, self.json, self.action = {}, {}, "?"
        ctype = environ.get("CONTENT_TYPE", "")
        if self.service in ("ec2", "sts"):
            text = body.decode("utf-8", "replace") if self.method == "POST" else environ.get("QUERY_STRING", "")
            self.form = {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
            self.action = self.form.get("Action", "?")
        elif self.service == "dynamodb":
            self.action = environ.get("HTTP_X_AMZ_TARGET", "?").rpartition(".")[2]
            try:
                self.json = json.loads(body or b"{}")
            except ValueError:
                self.json = {}
        elif self.service == "route53":
            self.action = f"{self.method} {re.sub(r'/[A-Z0-9]{8,}', '/ID', self.path)}"
        elif self.service == "s3":
            self.action = self.method
        self.query = environ.get("QUERY_STRING", "")
        del ctype

    def iam_action(self):
        """The IAM action this request needs ("s3:PutObject"), as a policy names it."""
        if self.service == "route53":
            method, path = self.action.split(" ", 1)
            path = path.removeprefix("/2013-04-01")
            for (m, pattern), name in ROUTE53_IAM.items():
                if m == method and re.fullmatch(pattern, path):
                    return f"route53:{name}"
            return f"route53:{self.action}"
        if self.service == "s3":
            key = "/" in self.path.strip("/")
            q = urllib.parse.parse_qs(self.query, keep_blank_values=True)
            if self.method == "DELETE" and "uploadId" in q:
                return "s3:AbortMultipartUpload"
            if key:
                return "s3:PutObject" if self.method in ("PUT", "POST") else \
                    "s3:DeleteObject" if self.method == "DELETE" else "s3:GetObject"
            return {"PUT": "s3:CreateBucket", "DELETE": "s3:DeleteBucket"}.get(self.method, "s3:ListBucket")
        return f"{self.service}:{self.action}"

    def token_key(self):
        token = self.form.get("ClientToken")
        if token and self.action in ("RunInstances", "CreateVolume"):
            return (self.account, self.region, self.action, token)
        return None

    def params_without_token(self):
        return hashlib.sha256(json.dumps(
            sorted((k, v) for k, v in self.form.items() if k != "ClientToken")).encode()).hexdigest()


DEFAULT_EBS_KEY = "alias/aws/ebs"

# Route53's REST calls and the IAM actions they need (Route53 API Reference).
ROUTE53_IAM = {
    ("GET", r"/hostedzonesbyname"): "ListHostedZonesByName",
    ("GET", r"/hostedzone"): "ListHostedZones",
    ("POST", r"/hostedzone"): "CreateHostedZone",
    ("GET", r"/hostedzone/[^/]+"): "GetHostedZone",
    ("DELETE", r"/hostedzone/[^/]+"): "DeleteHostedZone",
    ("POST", r"/hostedzone/[^/]+/associatevpc"): "AssociateVPCWithHostedZone",
    ("GET", r"/hostedzone/[^/]+/rrset"): "ListResourceRecordSets",
    ("POST", r"/hostedzone/[^/]+/rrset"): "ChangeResourceRecordSets",
    ("GET", r"/change/[^/]+"): "GetChange",
}

# Public Systems Manager parameters EC2 resolves at launch (`resolve:ssm:`), per region:
# Canonical's current Ubuntu LTS, as the lab's UbuntuBase AMIs (examples/profiles/web.yaml).
_UBUNTU = {"us-east-1": "ami-0c7217cdde317cfec", "us-west-1": "ami-0ce2cb35386fc22e9",
           "eu-west-1": "ami-0905a3c97561e0b69", "ap-southeast-1": "ami-078c1149d8ad719a7",
           "ap-northeast-1": "ami-07c589821f2b353aa"}
PUBLIC_PARAMETERS = {
    f"/aws/service/canonical/ubuntu/server/{release}/stable/current/amd64/hvm/ebs-gp3/ami-id": _UBUNTU
    for release in ("24.04", "22.04")
}

# Images of the lab's own beside the profiles': one for Graviton (arm64) types, and one
# its owner deprecated (EC2 User Guide, "Deprecate an AMI": DescribeImages shows
# DeprecationTime; a launch by id still works).
LAB_IMAGES = {
    "ami-0a0b0c0d0e0f0a064": ("us-east-1", "arm64", "lab ubuntu 24.04 arm64"),
    "ami-0de9eca7ed0de9eca": ("us-east-1", "x86_64", "lab ubuntu 20.04 (deprecated)"),
}
DEPRECATED_IMAGES = {"ami-0de9eca7ed0de9eca": "2025-06-30T00:00:00.000Z"}

# Capacity and quotas (EC2 API Reference, "Error codes"; EC2 User Guide, "On-Demand
# Instance quotas"; EBS quotas; Elastic IP quota; enhanced networking with ENA).
LIMIT_KEYS = {"vcpus", "instances", "addresses", "volume-gib", "capacity", "not-offered", "no-ena",
              "terminated-listed", "credentials", "require-imdsv2", "no-default-vpc",
              "region-disabled", "route53-insync", "console-delay", "console-keys", "snapshot-copies",
              "snapshot", "snapshot-copy"}
# console-delay: seconds after launch the console output appears (instead of `console`);
# console-keys: "lab" (the lab sshd's key, default), "none" (no key block), or
# "per-instance" (a key of each instance's own, which the lab's sshd does not have).
LIMITED_ACTIONS = {"RunInstances", "StartInstances", "CreateVolume", "AllocateAddress"}
# Instance types that run without ENA (previous generations); every current type needs it.
ENA_OPTIONAL = ("t1.", "t2.", "m1.", "m2.", "m3.", "m4.", "c1.", "c3.", "c4.", "r3.", "r4.",
                "i2.", "d2.", "g2.", "x1.", "cc2.", "cr1.", "hs1.")


def vcpus(itype):
    from moto.ec2.models.instance_types import INSTANCE_TYPES
    return INSTANCE_TYPES.get(itype, {}).get("VCpuInfo", {}).get("DefaultVCpus", 1)

# CreateVolume's limits (EC2 API Reference, CreateVolume; EBS User Guide, volume types).
VOLUME_SIZES = {"gp2": (1, 16384), "gp3": (1, 65536), "io1": (4, 16384), "io2": (4, 65536),
                "st1": (125, 16384), "sc1": (125, 16384), "standard": (1, 1024)}
VOLUME_IOPS = {"gp3": (3000, 80000, 500), "io1": (100, 64000, 50), "io2": (100, 256000, 1000)}


def volume_refusal(form):
    """(code, message) EC2 refuses a CreateVolume with, or None."""
    kind = form.get("VolumeType", "gp2")
    size = int(form.get("Size", "0") or 0)
    iops = int(form["Iops"]) if form.get("Iops") else None
    throughput = int(form["Throughput"]) if form.get("Throughput") else None
    if form.get("KmsKeyId") and form.get("Encrypted") != "true":
        return ("InvalidParameterDependency", "The parameter KmsKeyId requires the parameter Encrypted to be set.")
    if kind not in VOLUME_SIZES:
        return ("InvalidParameterValue", f"Value ({kind}) for parameter volumeType is invalid.")
    lo, hi = VOLUME_SIZES[kind]
    if not form.get("Size") and form.get("SnapshotId"):
        return None  # the snapshot's size (moto's own checks follow)
    if size < lo:
        return ("InvalidParameterValue", f"Volume of {size}GiB is too small; minimum is {lo}GiB.")
    if size > hi:
        return ("InvalidParameterValue", f"Volume of {size}GiB is too large; maximum is {hi}GiB.")
    if iops is not None and kind not in VOLUME_IOPS:
        return ("InvalidParameterCombination", f"The parameter iops is not supported for {kind} volumes.")
    if iops is None and kind in ("io1", "io2"):
        return ("InvalidParameterCombination", f"The parameter iops must be specified for {kind} volumes.")
    if iops is not None:
        lo, hi, per_gib = VOLUME_IOPS[kind]
        if iops < lo:
            return ("InvalidParameterValue", f"Volume iops of {iops} is too low; minimum is {lo}.")
        if iops > hi:
            return ("InvalidParameterValue", f"Volume iops of {iops} is too high; maximum is {hi}.")
        if iops > per_gib * size and iops > lo:
            return ("InvalidParameterValue",
                    f"Iops to volume size ratio of {iops / size:f} is too high; maximum is {per_gib:f}.")
    if throughput is not None:
        if kind != "gp3":
            return ("InvalidParameterCombination", f"The parameter throughput is not supported for {kind} volumes.")
        if throughput < 125 or throughput > 2000:
            return ("InvalidParameterValue",
                    f"Throughput (MiBps) of {throughput} is out of range; it must be between 125 and 2000.")
        effective = iops or 3000
        if throughput > 125 and throughput * 4 > effective:
            return ("InvalidParameterValue",
                    f"Throughput (MiBps) to iops ratio of {throughput / effective:f} is too high; "
                    "maximum is 0.250000 MiBps per iops.")
    return None


def ec2_ok(action, fields):
    """A 200 answer of EC2's query protocol with these (locationName -> text) fields."""
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items())
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{action}Response xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
            f"<requestId>lab-{random.getrandbits(64):016x}</requestId>{inner}</{action}Response>").encode()

    def answer(start_response):
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]
    return answer


def ec2_error(status, code, message):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{message}</Message></Error></Errors><RequestID>lab-{random.getrandbits(64):016x}"
            "</RequestID></Response>").encode()
    reason = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error",
              503: "Service Unavailable"}[status]

    def answer(start_response):
        start_response(f"{status} {reason}", [("Content-Type", "text/xml"),
                                               ("Content-Length", str(len(body)))])
        return [body]
    return answer


def refused_credentials(req, start_response):
    """What each service answers a signature made with an access key it does not know."""
    if req.service == "ec2":
        return ec2_error(401, "AuthFailure", "AWS was not able to validate the provided access credentials")(
            start_response)
    if req.service == "dynamodb":
        body = json.dumps({"__type": "com.amazon.coral.service#UnrecognizedClientException",
                           "message": "The security token included in the request is invalid."}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    body = (b'<?xml version="1.0"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>'
            b"<Message>The security token included in the request is invalid.</Message></Error>"
            b"<RequestId>lab</RequestId></ErrorResponse>")
    start_response("403 Forbidden", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def account_id(key):
    """The lab's account id of an access key: 12 digits of its hash (moto has one account
    for every key; the lab tells them apart)."""
    return str(int(hashlib.sha256(key.encode()).hexdigest(), 16) % 10**12).zfill(12)


def caller_identity(req, start_response):
    """STS GetCallerIdentity: the account of the request's access key."""
    acct = account_id(req.account)
    body = (f'<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<GetCallerIdentityResult><Arn>arn:aws:iam::{acct}:user/lab</Arn>"
            f"<UserId>{req.account}</UserId><Account>{acct}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>lab</RequestId></ResponseMetadata>"
            f"</GetCallerIdentityResponse>").encode()
    return xml_answer(start_response, "200 OK", body)


def encode_denial(req, action, conditions):
    """An "encoded authorization failure message": opaque to the caller, readable
    through sts:DecodeAuthorizationMessage (here: base64 of the decoded JSON, with a
    marker so only the lab's own messages decode)."""
    acct = account_id(req.account)
    decoded = {"allowed": False, "explicitDeny": False, "matchedStatements": {"items": []},
               "failures": {"items": []},
               "context": {"principal": {"id": req.account, "arn": f"arn:aws:iam::{acct}:user/lab"},
                           "action": action,
                           "resource": f"arn:aws:ec2:{req.region}:{acct}:instance/*",
                           "conditions": {"items": [{"key": k, "values": {"items": [{"value": v}]}}
                                                    for k, v in conditions.items()]}}}
    return "lab-" + base64.urlsafe_b64encode(json.dumps(decoded).encode()).decode()


def decode_denial(req, start_response):
    """STS DecodeAuthorizationMessage of a message the lab encoded."""
    from xml.sax.saxutils import escape
    encoded = req.form.get("EncodedMessage", "")
    try:
        assert encoded.startswith("lab-")
        decoded = base64.urlsafe_b64decode(encoded[4:].encode()).decode()
    except Exception:  # noqa: BLE001 - not one of ours: what STS says
        body = (b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
                b"<Code>InvalidAuthorizationMessageException</Code><Message>The message is not valid.</Message>"
                b"</Error><RequestId>lab</RequestId></ErrorResponse>")
        return xml_answer(start_response, "400 Bad Request", body)
    body = (f'<DecodeAuthorizationMessageResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            f"<DecodeAuthorizationMessageResult><DecodedMessage>{escape(decoded)}</DecodedMessage>"
            f"</DecodeAuthorizationMessageResult><ResponseMetadata><RequestId>lab</RequestId>"
            f"</ResponseMetadata></DecodeAuthorizationMessageResponse>").encode()
    return xml_answer(start_response, "200 OK", body)


def xml_answer(start_response, status, body):
    start_response(status, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
    return [body]


def s3_error(start_response, status, code, message, method):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>lab</RequestId></Error>").encode()
    reason = {403: "Forbidden", 409: "Conflict"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/xml"),
                                          ("Content-Length", str(0 if method == "HEAD" else len(body)))])
    return [] if method == "HEAD" else [body]


def throttled(req, start_response):
    if req.service == "ec2":
        return ec2_error(503, "RequestLimitExceeded", "Request limit exceeded.")(start_response)
    if req.service == "dynamodb":
        body = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                           "message": "Rate of requests exceeds the allowed throughput."}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                           ("Content-Length", str(len(body)))])
        return [body]
    if req.service == "route53":
        body = (b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
                b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
                b"</Error><RequestId>lab</RequestId></ErrorResponse>")
        return xml_answer(start_response, "400 Bad Request", body)
    body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")
    start_response("503 Slow Down", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
    return [body]


if __name__ == "__main__":
    main()
