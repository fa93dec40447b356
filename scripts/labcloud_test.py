#!/usr/bin/env python3
"""Shows that the lab cloud (scripts/labcloud.py) really behaves as docs/lab-cloud.md says:
one plain boto3 sequence per modelled behaviour, against a lab cloud of its own.

    .lab/venv/bin/python scripts/labcloud_test.py [-v]
"""

import json
import os
import pathlib
import subprocess
import tempfile
import sys
import time
import unittest
import urllib.error
import urllib.request

import boto3
import botocore.config
from botocore.exceptions import ClientError

ROOT = pathlib.Path(__file__).resolve().parent.parent
AMI = "ami-a6f504cf"  # UbuntuGeneric32Bit in us-east-1 (examples/profiles)
ZONE = "us-east-1a"
T = 0.8  # every transition takes this long here
SEEN = 0.3  # a new instance is invisible this long


class LabCloud(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ, CERVEZA_LAB_CLOUD=(
            f"pending={T},stopping={T},shutting-down={T},volume-creating={T},"
            f"volume-attaching={T},volume-deleting={T},table-creating={T},visibility={SEEN},"
            f"console={T}"))
        cls.keys = tempfile.TemporaryDirectory()
        cls.host_key = pathlib.Path(cls.keys.name) / "host_ed25519.pub"
        cls.host_key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILabHostKey lab@sshd\n")
        # Port 0: it binds a free port itself and prints it once it listens.
        cls.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts/labcloud.py"), "--port", "0",
             "--profiles", str(ROOT / "examples/profiles"), "--host-keys", str(cls.host_key)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = cls.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            raise RuntimeError(f"labcloud.py printed {line!r}: {cls.proc.stderr.read().decode()}")
        cls.url = f"http://127.0.0.1:{line}"

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait()
        cls.proc.stderr.close()
        cls.proc.stdout.close()
        cls.keys.cleanup()

    def client(self, service, account="AKIDLABTEST", region="us-east-1", retries=0):
        # No retries: the test sees every answer the cloud gives.
        return boto3.client(
            service, region_name=region, endpoint_url=self.url,
            aws_access_key_id=account, aws_secret_access_key="x",
            config=botocore.config.Config(retries={"total_max_attempts": retries + 1, "mode": "standard"}))

    def ec2(self, account=None):
        return self.client("ec2", account=account or f"AKID{self._testMethodName[:12].upper()}")

    def launch(self, ec2, **extra):
        args = dict(ImageId=AMI, MinCount=1, MaxCount=1, KeyName="noc",
                    Placement={"AvailabilityZone": ZONE})
        args.update(extra)
        return ec2.run_instances(**args)["Instances"][0]

    def state(self, ec2, iid):
        r = ec2.describe_instances(InstanceIds=[iid])["Reservations"]
        return r[0]["Instances"][0]["State"]["Name"]

    def until(self, fn, want, limit=10):
        deadline = time.monotonic() + limit
        while True:
            try:
                got = fn()
            except ClientError as e:
                got = e.response["Error"]["Code"]
            if got == want or time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def burst(self, call, count):
        """Makes `count` calls at once; returns each one's "ok" or error code, and the seconds taken."""
        import concurrent.futures

        def one(_):
            try:
                call()
                return "ok"
            except ClientError as e:
                return e.response["Error"]["Code"]
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
            answers = list(pool.map(one, range(count)))
        return answers, time.monotonic() - started

    def code(self, fn):
        with self.assertRaises(ClientError) as cm:
            fn()
        return cm.exception.response["Error"]["Code"]

    def test_a_new_instance_is_invisible_then_pending_then_running(self):
        ec2 = self.ec2()
        i = self.launch(ec2)
        self.assertEqual(i["State"]["Name"], "pending")
        self.assertEqual(self.code(lambda: self.state(ec2, i["InstanceId"])), "InvalidInstanceID.NotFound")
        tagged = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [i["InstanceId"]]}])
        self.assertEqual(tagged["Reservations"], [])
        self.assertEqual(self.until(lambda: self.state(ec2, i["InstanceId"]), "running"), "running")

    def test_stop_of_a_pending_and_start_of_a_stopping_instance_are_refused(self):
        ec2 = self.ec2()
        iid = self.launch(ec2)["InstanceId"]
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "pending"), "pending")
        self.assertEqual(self.code(lambda: ec2.stop_instances(InstanceIds=[iid])), "IncorrectInstanceState")
        self.until(lambda: self.state(ec2, iid), "running")
        out = ec2.stop_instances(InstanceIds=[iid])["StoppingInstances"][0]
        self.assertEqual(out["CurrentState"]["Name"], "stopping")
        self.assertEqual(self.state(ec2, iid), "stopping")
        self.assertEqual(self.code(lambda: ec2.start_instances(InstanceIds=[iid])), "IncorrectInstanceState")
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "stopped"), "stopped")
        launched = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["LaunchTime"]
        time.sleep(1.1)  # LaunchTime has whole seconds: the next start is a later second
        ec2.start_instances(InstanceIds=[iid])
        self.assertEqual(self.state(ec2, iid), "pending")
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "running"), "running")
        # LaunchTime is the last start's (a move tells a set taken since it from an older one).
        again = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["LaunchTime"]
        self.assertGreater(again, launched)
        ec2.terminate_instances(InstanceIds=[iid])
        self.assertEqual(self.state(ec2, iid), "shutting-down")
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "terminated"), "terminated")

    def test_volumes_create_attach_and_delete_take_time(self):
        ec2 = self.ec2()
        iid = self.launch(ec2)["InstanceId"]
        v = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        vol = lambda: ec2.describe_volumes(VolumeIds=[v])["Volumes"][0]  # noqa: E731
        self.assertEqual(vol()["State"], "creating")
        self.until(lambda: self.state(ec2, iid), "running")
        self.assertEqual(self.until(lambda: vol()["State"], "available"), "available")
        ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdf")
        self.assertEqual(vol()["Attachments"][0]["State"], "attaching")
        self.assertEqual(self.until(lambda: vol()["Attachments"][0]["State"], "attached"), "attached")
        self.assertEqual(self.code(lambda: ec2.delete_volume(VolumeId=v)), "VolumeInUse")
        ec2.detach_volume(VolumeId=v, InstanceId=iid)
        ec2.delete_volume(VolumeId=v)
        self.assertEqual(vol()["State"], "deleting")
        self.assertEqual(self.until(lambda: vol()["State"], "InvalidVolume.NotFound"), "InvalidVolume.NotFound")

    def test_attaching_a_creating_volume_is_refused(self):
        ec2 = self.ec2()
        iid = self.launch(ec2)["InstanceId"]
        self.until(lambda: self.state(ec2, iid), "running")
        v = ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        self.assertEqual(
            self.code(lambda: ec2.attach_volume(VolumeId=v, InstanceId=iid, Device="/dev/sdf")),
            "IncorrectState")

    def test_an_elastic_ip_cannot_go_to_a_pending_instance(self):
        ec2 = self.ec2()
        iid = self.launch(ec2)["InstanceId"]
        alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
        self.until(lambda: self.state(ec2, iid), "pending")
        self.assertEqual(
            self.code(lambda: ec2.associate_address(AllocationId=alloc, InstanceId=iid)),
            "InvalidInstanceID")
        self.until(lambda: self.state(ec2, iid), "running")
        ec2.associate_address(AllocationId=alloc, InstanceId=iid)

    def test_a_client_token_answers_the_first_launch_and_refuses_other_parameters(self):
        ec2 = self.ec2()
        first = self.launch(ec2, ClientToken="tok-1")
        again = self.launch(ec2, ClientToken="tok-1")
        self.assertEqual(first["InstanceId"], again["InstanceId"])
        self.assertEqual(
            self.code(lambda: self.launch(ec2, ClientToken="tok-1", InstanceType="m5.large")),
            "IdempotentParameterMismatch")
        v1 = ec2.create_volume(Size=1, AvailabilityZone=ZONE, ClientToken="vol-1")["VolumeId"]
        v2 = ec2.create_volume(Size=1, AvailabilityZone=ZONE, ClientToken="vol-1")["VolumeId"]
        self.assertEqual(v1, v2)
        self.assertEqual(
            self.code(lambda: ec2.create_volume(Size=2, AvailabilityZone=ZONE, ClientToken="vol-1")),
            "IdempotentParameterMismatch")

    def test_unknown_amis_and_key_pairs_are_refused_and_amis_are_regional(self):
        ec2 = self.ec2()
        self.assertEqual(self.code(lambda: self.launch(ec2, ImageId="ami-12345678")), "InvalidAMIID.NotFound")
        self.assertEqual(self.code(lambda: self.launch(ec2, KeyName="nobody")), "InvalidKeyPair.NotFound")
        eu = self.client("ec2", account="AKIDAMIREGION", region="eu-west-1")
        self.assertEqual(
            self.code(lambda: eu.run_instances(ImageId=AMI, MinCount=1, MaxCount=1)),
            "InvalidAMIID.NotFound")
        eu.run_instances(ImageId="ami-4290a936", MinCount=1, MaxCount=1, KeyName="noc")

    def test_user_data_over_16_kb_is_refused(self):
        ec2 = self.ec2()
        # boto3 base64-encodes UserData itself; the limit is on the raw bytes.
        self.launch(ec2, UserData="x" * 16384)
        self.assertEqual(
            self.code(lambda: self.launch(ec2, UserData="x" * 16385)),
            "InvalidParameterValue")

    def test_ec2_buckets_are_per_action_region_and_account(self):
        ec2 = self.ec2()
        # RunInstances: 5 tokens, 2 per second (a burst, for the reason given below).
        answers, elapsed = self.burst(lambda: self.launch(ec2), 15)
        self.assertIn("RequestLimitExceeded", answers)
        self.assertLessEqual(answers.count("ok"), 5 + 2 * elapsed + 1, (answers, elapsed))
        # Other actions, regions and accounts have their own buckets.
        ec2.describe_instances(MaxResults=5)
        self.launch(self.ec2(account="AKIDOTHERACCOUNT"))
        self.client("ec2", account=ec2._request_signer._credentials.access_key,
                    region="eu-west-1").run_instances(ImageId="ami-4290a936", MinCount=1, MaxCount=1)
        time.sleep(0.6)  # a token comes back every half second
        self.launch(ec2)
        # Unfiltered, unpaginated describes spend a smaller bucket (50) than paginated ones (100).
        # Counted against the time the burst took, not a fixed count: on a loaded machine
        # sequential requests can take as long as the bucket takes to refill (10 a second).
        answers, elapsed = self.burst(self.ec2(account="AKIDDESCRIBES").describe_volumes, 150)
        self.assertIn("RequestLimitExceeded", answers)
        self.assertEqual(set(answers) - {"ok", "RequestLimitExceeded"}, set())
        self.assertLessEqual(answers.count("ok"), 50 + 10 * elapsed + 1, (answers.count("ok"), elapsed))
        p = self.ec2(account="AKIDPAGINATED")
        for _ in range(90):
            p.describe_volumes(MaxResults=5)
        # Resource tokens: one RunInstances for 1000 instances empties that bucket.
        r = self.ec2(account="AKIDRESOURCE")
        self.launch(r, MinCount=1000, MaxCount=1000)
        # (moto takes a few seconds to make 1000; 2 tokens a second come back meanwhile)
        self.assertEqual(self.code(lambda: self.launch(r, MinCount=50, MaxCount=50)), "RequestLimitExceeded")

    def test_route53_allows_five_requests_per_second_per_account(self):
        # A burst at once, not one after the other: on a loaded machine sequential
        # requests can take as long as the bucket takes to refill (5 a second).
        answers, elapsed = self.burst(self.client("route53", account="AKIDROUTE53").list_hosted_zones, 30)
        self.assertIn("Throttling", answers)
        self.assertEqual(set(answers) - {"ok", "Throttling"}, set())
        self.assertLessEqual(answers.count("ok"), 5 + 5 * elapsed + 1, (answers, elapsed))

    def test_a_new_table_is_creating_and_refuses_items_until_active(self):
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName="lab-test", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
        self.assertEqual(ddb.describe_table(TableName="lab-test")["Table"]["TableStatus"], "CREATING")
        put = lambda: ddb.put_item(TableName="lab-test", Item={"k": {"S": "a"}})  # noqa: E731
        self.assertEqual(self.code(put), "ResourceNotFoundException")
        self.assertEqual(
            self.until(lambda: ddb.describe_table(TableName="lab-test")["Table"]["TableStatus"], "ACTIVE"),
            "ACTIVE")
        put()

    def test_global_table_replicas_are_shown_by_describe_table(self):
        ddb = self.client("dynamodb")
        ddb.create_table(
            TableName="lab-global", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
        self.until(lambda: ddb.describe_table(TableName="lab-global")["Table"]["TableStatus"], "ACTIVE")
        self.assertNotIn("Replicas", ddb.describe_table(TableName="lab-global")["Table"])
        ddb.update_table(TableName="lab-global", MultiRegionConsistency="STRONG", ReplicaUpdates=[
            {"Create": {"RegionName": "us-east-2"}}, {"Create": {"RegionName": "us-west-2"}}])
        t = ddb.describe_table(TableName="lab-global")["Table"]
        self.assertEqual([r["RegionName"] for r in t["Replicas"]], ["us-east-2", "us-west-2"])
        self.assertEqual(t["MultiRegionConsistency"], "STRONG")
        ddb.update_table(TableName="lab-global", ReplicaUpdates=[{"Delete": {"RegionName": "us-west-2"}}])
        self.assertEqual([r["RegionName"] for r in ddb.describe_table(TableName="lab-global")["Table"]["Replicas"]],
                         ["us-east-2"])

    def test_the_console_shows_the_host_keys_a_while_after_launch(self):
        ec2 = self.ec2()
        iid = self.launch(ec2)["InstanceId"]
        time.sleep(SEEN + 0.1)
        self.assertNotIn("Output", ec2.get_console_output(InstanceId=iid))
        out = self.until(lambda: "Output" in ec2.get_console_output(InstanceId=iid), True)
        self.assertTrue(out)
        text = ec2.get_console_output(InstanceId=iid)["Output"]
        block = text.split("-----BEGIN SSH HOST KEY KEYS-----\r\n")[1].split("-----END SSH HOST KEY KEYS-----")[0]
        self.assertEqual(block, f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILabHostKey root@{iid}\r\n")

    def test_an_account_s_consoles_can_come_late_without_keys_or_with_keys_of_their_own(self):
        def block(ec2, iid):
            text = ec2.get_console_output(InstanceId=iid).get("Output", "")
            if "-----BEGIN SSH HOST KEY KEYS-----" not in text:
                return None
            return text.split("-----BEGIN SSH HOST KEY KEYS-----\r\n")[1].split("-----END")[0]
        account = "AKIDCONSOLES"
        ec2 = self.ec2(account=account)
        self.limits(account, **{"console-keys": "none"})
        bare = self.launch(ec2)["InstanceId"]
        self.until(lambda: "Output" in ec2.get_console_output(InstanceId=bare), True)
        self.assertIsNone(block(ec2, bare))
        self.limits(account, **{"console-keys": "per-instance", "console-delay": 0})
        a, b = (self.launch(ec2)["InstanceId"] for _ in range(2))
        for i in (a, b):
            self.until(lambda i=i: "Output" in ec2.get_console_output(InstanceId=i), True)
        ka, kb = block(ec2, a), block(ec2, b)
        self.assertTrue(ka.startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5") and ka.endswith(f" root@{a}\r\n"), ka)
        self.assertNotEqual(ka.split()[1], kb.split()[1])
        self.assertNotIn("ILabHostKey", ka + kb)
        self.limits(account, **{"console-keys": None, "console-delay": 30})
        late = self.launch(ec2)["InstanceId"]
        time.sleep(SEEN + 3)
        self.assertNotIn("Output", ec2.get_console_output(InstanceId=late))

    def test_types_a_zone_does_not_offer_and_images_of_another_architecture_are_refused(self):
        ec2 = self.ec2(account="AKIDOFFERINGS")
        code, message, _ = self.error(lambda: ec2.run_instances(
            ImageId=AMI, InstanceType="c5.large", MinCount=1, MaxCount=1,
            Placement={"AvailabilityZone": "us-east-1e"}))
        self.assertEqual(code, "Unsupported")
        self.assertIn("choosing us-east-1a, us-east-1b, us-east-1c, us-east-1d, us-east-1f.", message)
        offered = ec2.describe_instance_type_offerings(
            LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": ["c5.large"]}])
        self.assertNotIn("us-east-1e", [o["Location"] for o in offered["InstanceTypeOfferings"]])
        arm = "ami-0a0b0c0d0e0f0a064"
        code, message, _ = self.error(lambda: ec2.run_instances(
            ImageId=arm, InstanceType="t3.small", MinCount=1, MaxCount=1))
        self.assertEqual(code, "InvalidParameterValue")
        self.assertIn("architecture 'arm64' of the specified AMI", message)
        ec2.run_instances(ImageId=arm, InstanceType="t4g.small", MinCount=1, MaxCount=1)
        # A deprecated image says so, and still launches by id.
        old = "ami-0de9eca7ed0de9eca"
        image = ec2.describe_images(ImageIds=[old])["Images"][0]
        self.assertEqual(image["DeprecationTime"], "2025-06-30T00:00:00.000Z")
        ec2.run_instances(ImageId=old, InstanceType="t3.small", MinCount=1, MaxCount=1)

    def test_snapshots_are_pending_for_a_while_limited_per_volume_and_copies_per_region(self):
        account = "AKIDSNAPSHOTS"
        ec2 = self.ec2(account=account)
        iid = self.launch(ec2)["InstanceId"]
        self.until(lambda: self.state(ec2, iid), "running")
        vol = ec2.create_volume(AvailabilityZone=ZONE, Size=100, VolumeType="gp3", TagSpecifications=[
            {"ResourceType": "volume", "Tags": [{"Key": "cerveza:device", "Value": "/dev/sdf"}]}])["VolumeId"]
        self.until(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"], "available")
        ec2.attach_volume(VolumeId=vol, InstanceId=iid, Device="/dev/sdf")
        # One crash-consistent set of the instance's data volumes, each with its volume's tags.
        snaps = ec2.create_snapshots(
            InstanceSpecification={"InstanceId": iid, "ExcludeBootVolume": True},
            CopyTagsFromSource="volume",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "set", "Value": "s1"}]}])["Snapshots"]
        self.assertEqual([x["VolumeId"] for x in snaps], [vol])
        snap = snaps[0]["SnapshotId"]
        info = ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
        self.assertEqual(info["State"], "pending")
        self.assertEqual({t["Key"]: t["Value"] for t in info["Tags"]}, {"cerveza:device": "/dev/sdf", "set": "s1"})
        # No volume from a snapshot still pending (velero#1799: "Snapshot is in invalid state - pending").
        code, message, _ = self.error(lambda: ec2.create_volume(AvailabilityZone=ZONE, SnapshotId=snap))
        self.assertEqual((code, message), ("IncorrectState", "Snapshot is in invalid state - pending"))
        # Nor a copy of one (only a completed snapshot can be copied).
        west = self.client("ec2", account=account, region="us-west-1")
        code, message, _ = self.error(lambda: west.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1"))
        self.assertEqual((code, message), ("IncorrectState", "Snapshot is in invalid state - pending"))
        # At most five pending per volume.
        for _ in range(4):
            ec2.create_snapshot(VolumeId=vol)
        code, _, _ = self.error(lambda: ec2.create_snapshot(VolumeId=vol))
        self.assertEqual(code, "ConcurrentSnapshotLimitExceeded")
        # 100 GiB at the lab's test pace (0.01 s per GiB): completed in about a second.
        self.assertEqual(self.until(lambda: ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"],
                                    "completed"), "completed")
        made = ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap)
        self.assertEqual((made["State"], made["SnapshotId"], made["Size"]), ("creating", snap, 100))
        # Copies to a region: at most `snapshot-copies` at once per account there.
        self.limits(account, region="eu-west-1", **{"snapshot-copies": 1})
        eu = self.client("ec2", account=account, region="eu-west-1")
        copy = eu.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1", TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": "set", "Value": "s1"}]}])["SnapshotId"]
        info = eu.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]
        self.assertEqual(info["State"], "pending")
        # User tags are not copied: only those asked for with the copy.
        self.assertEqual({t["Key"]: t["Value"] for t in info["Tags"]}, {"set": "s1"})
        code, _, _ = self.error(lambda: eu.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1"))
        self.assertEqual(code, "ResourceLimitExceeded")

    def test_create_volume_is_refused_as_ec2_refuses_it(self):
        ec2 = self.ec2()
        cases = [
            (dict(Size=100, VolumeType="st1"), "InvalidParameterValue", "minimum is 125GiB"),
            (dict(Size=70000, VolumeType="gp3"), "InvalidParameterValue", "maximum is 65536GiB"),
            (dict(Size=10, VolumeType="gp3", Iops=16000), "InvalidParameterValue", "maximum is 500.000000"),
            (dict(Size=100, VolumeType="gp3", Iops=2000), "InvalidParameterValue", "minimum is 3000"),
            (dict(Size=100, VolumeType="io1", Iops=6000), "InvalidParameterValue", "maximum is 50.000000"),
            (dict(Size=100, VolumeType="gp3", Throughput=1000), "InvalidParameterValue", "0.250000 MiBps per iops"),
            (dict(Size=100, VolumeType="gp2", Iops=3000), "InvalidParameterCombination", "not supported for gp2"),
            (dict(Size=100, VolumeType="io2"), "InvalidParameterCombination", "must be specified"),
            (dict(Size=100, VolumeType="gp3", KmsKeyId="alias/aws/ebs"), "InvalidParameterDependency", "Encrypted"),
        ]
        for args, code, says in cases:
            with self.assertRaises(ClientError, msg=str(args)) as cm:
                ec2.create_volume(AvailabilityZone=ZONE, **args)
            err = cm.exception.response["Error"]
            self.assertEqual((err["Code"], says in err["Message"]), (code, True), (args, err))
        # A zone the region does not have (or another region's): no volume.
        before = len(ec2.describe_volumes()["Volumes"])
        for zone in ("us-east-1z", "eu-west-1a"):
            with self.assertRaises(ClientError) as cm:
                ec2.create_volume(AvailabilityZone=zone, Size=10)
            err = cm.exception.response["Error"]
            self.assertEqual((err["Code"], err["Message"]),
                             ("InvalidZone.NotFound", f"The zone '{zone}' does not exist."))
        self.assertEqual(len(ec2.describe_volumes()["Volumes"]), before)
        ok = ec2.create_volume(AvailabilityZone=ZONE, Size=160, VolumeType="gp3", Iops=80000, Throughput=2000)
        self.assertEqual(ok["State"], "creating")

    def test_an_unusable_kms_key_drops_volumes_and_terminates_launches(self):
        ec2, kms = self.ec2(), self.client("kms")
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.disable_key(KeyId=key)
        # A volume encrypted with it is accepted, then vanishes; its token is spent.
        args = dict(AvailabilityZone=ZONE, Size=10, Encrypted=True, KmsKeyId=key, ClientToken="kms-1")
        v = ec2.create_volume(**args)
        self.assertEqual(v["State"], "creating")
        gone = self.until(lambda: ec2.describe_volumes(VolumeIds=[v["VolumeId"]])["Volumes"][0]["State"],
                          "InvalidVolume.NotFound")
        self.assertEqual(gone, "InvalidVolume.NotFound")
        self.assertEqual(self.code(lambda: ec2.create_volume(**args)), "IdempotentParameterMismatch")
        # An enabled key works.
        kms.enable_key(KeyId=key)
        v = ec2.create_volume(AvailabilityZone=ZONE, Size=10, Encrypted=True, KmsKeyId=key)
        self.assertEqual(self.until(lambda: ec2.describe_volumes(VolumeIds=[v["VolumeId"]])["Volumes"][0]["State"],
                                    "available"), "available")
        # Encryption by default with a disabled default key: launches die with the reason.
        kms.disable_key(KeyId=key)
        self.assertTrue(ec2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"])
        self.assertEqual(ec2.modify_ebs_default_kms_key_id(KmsKeyId=key)["KmsKeyId"], key)
        self.assertEqual(ec2.get_ebs_default_kms_key_id()["KmsKeyId"], key)
        self.assertFalse(self.client("ec2", account="AKIDOTHERACCOUNT").get_ebs_encryption_by_default()[
            "EbsEncryptionByDefault"], "per account")
        iid = self.launch(ec2)["InstanceId"]
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "terminated"), "terminated")
        reason = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["StateReason"]
        self.assertEqual(reason["Code"], "Client.InvalidKMSKey.InvalidState")
        ec2.reset_ebs_default_kms_key_id()
        iid = self.launch(ec2)["InstanceId"]
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "running"), "running")

    def limits(self, account, region="us-east-1", **limits):
        body = json.dumps(dict(account=account, region=region, **limits)).encode()
        req = urllib.request.Request(self.url + "/lab-api/limits", data=body, method="POST")
        urllib.request.urlopen(req).read()

    def error(self, fn):
        """The error `fn` is refused with, asked again (after a token's refill) while the
        answer is only a throttle: a client that retries a 500 spends the action's
        bucket, and a test reads the refusal it is about, not the bucket it emptied."""
        for _ in range(20):
            with self.assertRaises(ClientError) as cm:
                fn()
            e = cm.exception.response
            if e["Error"]["Code"] not in ("RequestLimitExceeded", "Throttling"):
                break
            time.sleep(0.6)
        return e["Error"]["Code"], e["Error"]["Message"], e["ResponseMetadata"]["HTTPStatusCode"]

    def test_capacity_offerings_and_quotas_refuse_as_ec2_does(self):
        account = "AKIDLIMITS"
        # RunInstances' bucket is 5 then 2 a second: this many launches need the SDK's retries.
        ec2 = self.client("ec2", account=account, retries=6)
        # Refusals are read without retries: the SDK retries a 500, and each retry spends
        # RunInstances' bucket.
        once = self.client("ec2", account=account)
        self.limits(account, capacity={"us-east-1a": {"t3.small": 1}},
                    **{"not-offered": {"us-east-1b": ["t3.small"]}})
        first = self.launch(ec2, InstanceType="t3.small")["InstanceId"]
        code, message, status = self.error(lambda: self.launch(once, InstanceType="t3.small"))
        self.assertEqual((code, status), ("InsufficientInstanceCapacity", 500))
        self.assertIn("sufficient t3.small capacity in the Availability Zone you requested (us-east-1a)", message)
        self.assertNotIn("us-east-1b", message.split("choosing")[1], "1b does not offer it")
        code, message, _ = self.error(lambda: self.launch(
            once, InstanceType="t3.small", Placement={"AvailabilityZone": "us-east-1b"}))
        self.assertEqual(code, "Unsupported")
        self.assertIn("(t3.small) is not supported in your requested Availability Zone (us-east-1b)", message)
        # Another type, another zone, or another account are not limited.
        self.launch(ec2, InstanceType="t3.medium")
        self.launch(ec2, InstanceType="t3.small", Placement={"AvailabilityZone": "us-east-1c"})
        self.launch(self.client("ec2", account="AKIDLIMITSOTHER"), InstanceType="t3.small")
        # Capacity counts running instances: a stopped one frees its slot, and starting it
        # again is refused while another took the slot.
        self.until(lambda: self.state(ec2, first), "running")
        ec2.stop_instances(InstanceIds=[first])
        self.until(lambda: self.state(ec2, first), "stopped")
        self.launch(ec2, InstanceType="t3.small")
        # Without retries: the SDK retries a 500, and each retry spends StartInstances' bucket.
        self.assertEqual(self.error(lambda: once.start_instances(InstanceIds=[first]))[:3:2],
                         ("InsufficientInstanceCapacity", 500))
        # Account quotas: vCPUs (t3.small has 2; 3 instances run: 6), running instances.
        self.limits(account, vcpus=7, capacity=None)
        code, message, _ = self.error(lambda: self.launch(once, InstanceType="t3.small"))
        self.assertEqual(code, "VcpuLimitExceeded")
        self.assertIn("current vCPU limit of 7", message)
        self.launch(ec2, InstanceType="m1.small")  # 1 vCPU
        self.limits(account, vcpus=None, instances=4)
        code, message, _ = self.error(lambda: self.launch(once, InstanceType="m1.small"))
        self.assertEqual((code, message), ("InstanceLimitExceeded",
                                           "Your quota allows for 0 more running instance(s). You requested at least 1."))
        # An image without ENA cannot run a current type; a previous one runs.
        self.limits(account, instances=None, **{"no-ena": [AMI]})
        code, message, _ = self.error(lambda: self.launch(once, InstanceType="c5.large"))
        self.assertEqual(code, "InvalidParameterCombination")
        self.assertIn("(ENA) is required for the 'c5.large' instance type", message)
        self.launch(ec2, InstanceType="t2.micro")
        # EBS GiB per volume type, and Elastic IPs.
        self.limits(account, **{"volume-gib": {"gp3": 30}}, addresses=1)
        ec2.create_volume(AvailabilityZone=ZONE, Size=20, VolumeType="gp3")
        code, message, _ = self.error(lambda: ec2.create_volume(AvailabilityZone=ZONE, Size=20, VolumeType="gp3"))
        self.assertEqual((code, message), ("VolumeLimitExceeded",
                                           "You have exceeded your maximum gp3 storage limit of 30 GiB in this region."))
        ec2.create_volume(AvailabilityZone=ZONE, Size=20, VolumeType="gp2")
        ec2.allocate_address(Domain="vpc")
        self.assertEqual(self.error(lambda: ec2.allocate_address(Domain="vpc"))[0], "AddressLimitExceeded")
        # Unknown limits are refused, not ignored.
        with self.assertRaises(urllib.error.HTTPError):
            self.limits(account, cpus=3)

    def test_terminated_instances_leave_the_listings_while_their_token_answers(self):
        account = "AKIDGONE"
        ec2 = self.ec2(account)
        self.limits(account, **{"terminated-listed": 1})
        iid = self.launch(ec2, ClientToken="gone-1")["InstanceId"]
        self.until(lambda: self.state(ec2, iid), "running")
        ec2.terminate_instances(InstanceIds=[iid])
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "terminated"), "terminated")
        # A while after it terminated, no read shows it...
        self.assertEqual(self.until(lambda: self.state(ec2, iid), "InvalidInstanceID.NotFound"),
                         "InvalidInstanceID.NotFound")
        listed = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": [iid]}])["Reservations"]
        self.assertEqual(listed, [])
        # ...but its ClientToken still answers with it, as EC2 keeps tokens for a day.
        self.assertEqual(self.launch(ec2, ClientToken="gone-1")["InstanceId"], iid)
        # Other accounts keep the default (600 s here).
        other = self.ec2("AKIDGONEOTHER")
        kept = self.launch(other)["InstanceId"]
        self.until(lambda: self.state(other, kept), "running")
        other.terminate_instances(InstanceIds=[kept])
        self.until(lambda: self.state(other, kept), "terminated")
        time.sleep(1.5)
        self.assertEqual(self.state(other, kept), "terminated")

    def test_credentials_aws_does_not_know_are_refused_by_every_service(self):
        account = "AKIDUNKNOWNKEY"
        self.limits(account, credentials="invalid")
        code, message, status = self.error(lambda: self.ec2(account).describe_instances())
        self.assertEqual((code, status), ("AuthFailure", 401))
        self.assertIn("not able to validate", message)
        ddb = self.client("dynamodb", account=account)
        self.assertEqual(self.error(lambda: ddb.list_tables())[0], "UnrecognizedClientException")
        # Other keys are not affected; the key works again once the setting is removed.
        self.ec2("AKIDKNOWNKEY").describe_instances()
        self.limits(account, credentials=None)
        self.ec2(account).describe_instances()

    def test_route53_changes_are_pending_then_insync(self):
        r53 = self.client("route53", account="AKIDROUTE53SYNC", retries=4)
        zone = r53.create_hosted_zone(Name="sync.lab.", CallerReference="lab-sync-1")["HostedZone"]["Id"]

        def upsert(ip):
            return r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
                "Action": "UPSERT", "ResourceRecordSet": {
                    "Name": "a.sync.lab.", "Type": "A", "TTL": 60,
                    "ResourceRecords": [{"Value": ip}]}}]})["ChangeInfo"]
        first, second = upsert("192.0.2.1"), upsert("192.0.2.2")
        self.assertEqual((first["Status"], second["Status"]), ("PENDING", "PENDING"))
        self.assertNotEqual(first["Id"], second["Id"])
        change = first["Id"].split("/")[-1]
        self.assertEqual(r53.get_change(Id=change)["ChangeInfo"]["Status"], "PENDING")
        self.assertEqual(self.until(lambda: r53.get_change(Id=change)["ChangeInfo"]["Status"], "INSYNC"),
                         "INSYNC")

    def test_an_image_may_be_a_public_ssm_parameter(self):
        ec2 = self.ec2()
        name = "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id"
        made = self.launch(ec2, ImageId=f"resolve:ssm:{name}", InstanceType="t3.small")
        self.assertEqual(made["ImageId"], "ami-0c7217cdde317cfec")
        code, message, _ = self.error(lambda: self.launch(ec2, ImageId="resolve:ssm:/nope/ami-id"))
        self.assertEqual(code, "InvalidParameterValue")
        self.assertIn("/nope/ami-id does not exist in us-east-1", message)

    def test_an_opt_in_region_not_enabled_refuses_the_key_there_only(self):
        account = "AKIDOPTIN"
        body = json.dumps({"account": account, "region": "eu-west-1", "region-disabled": True}).encode()
        urllib.request.urlopen(urllib.request.Request(self.url + "/lab-api/limits", data=body,
                                                      method="POST")).read()
        there = self.client("ec2", account=account, region="eu-west-1")
        code, message, status = self.error(lambda: there.describe_instances())
        self.assertEqual((code, status), ("AuthFailure", 401))
        self.assertEqual(message, "AWS was not able to validate the provided access credentials")
        self.client("ec2", account=account).describe_instances()  # us-east-1 takes the key

    def test_a_policy_requiring_imdsv2_refuses_launches_without_it(self):
        account = "AKIDIMDSV2"
        ec2 = self.ec2(account)
        self.limits(account, **{"require-imdsv2": True})
        code, message, status = self.error(lambda: self.launch(ec2))
        self.assertEqual((code, status), ("UnauthorizedOperation", 403))
        self.assertIn("ec2:MetadataHttpTokens", message)
        encoded = message.split("Encoded authorization failure message: ")[1]
        decoded = json.loads(self.client("sts", account=account).decode_authorization_message(
            EncodedMessage=encoded)["DecodedMessage"])
        self.assertEqual((decoded["allowed"], decoded["context"]["action"]), (False, "ec2:RunInstances"))
        self.assertEqual(self.error(lambda: self.launch(ec2, MetadataOptions={"HttpTokens": "optional"}))[0],
                         "UnauthorizedOperation")
        iid = self.launch(ec2, MetadataOptions={"HttpTokens": "required", "HttpPutResponseHopLimit": 2})["InstanceId"]
        self.until(lambda: self.state(ec2, iid), "running")
        opts = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["MetadataOptions"]
        self.assertEqual((opts["HttpTokens"], opts["HttpPutResponseHopLimit"]), ("required", 2))

    def test_an_account_without_a_default_vpc_launches_into_subnets_with_group_ids(self):
        account = "AKIDNODEFAULTVPC"
        ec2 = self.client("ec2", account=account, retries=6)
        default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
        self.assertEqual(len(default), 1, "moto's region starts with a default VPC")
        default_subnet = ec2.describe_subnets(Filters=[
            {"Name": "vpc-id", "Values": [default[0]["VpcId"]]},
            {"Name": "availability-zone", "Values": [ZONE]}])["Subnets"][0]["SubnetId"]
        self.limits(account, **{"no-default-vpc": True})
        self.assertEqual(ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"], [])
        self.assertEqual(self.error(lambda: ec2.describe_vpcs(VpcIds=[default[0]["VpcId"]]))[0],
                         "InvalidVpcID.NotFound")
        # No subnet: nowhere to go.
        code, message, status = self.error(lambda: self.launch(ec2, SecurityGroups=["default"]))
        self.assertEqual((code, status), ("VPCIdNotSpecified", 400))
        self.assertIn("No default VPC for this user", message)
        # A VPC of its own: group names with its subnet are refused, ids work, and a
        # group of another VPC is refused.
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24",
                                   AvailabilityZone=ZONE)["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="lab-web", Description="w", VpcId=vpc)["GroupId"]
        code, message, _ = self.error(lambda: self.launch(ec2, SubnetId=subnet, SecurityGroups=["lab-web"]))
        self.assertEqual((code, message), ("InvalidParameterCombination",
                                           "The parameter groupName cannot be used with the parameter subnet"))
        other = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [default[0]["VpcId"]]},
            {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
        code, message, _ = self.error(lambda: self.launch(ec2, SubnetId=subnet, SecurityGroupIds=[other]))
        self.assertEqual((code, message), ("InvalidParameter",
                                           f"Security group {other} and subnet {subnet} belong to different networks."))
        made = self.launch(ec2, SubnetId=subnet, SecurityGroupIds=[group])
        self.assertEqual((made["SubnetId"], made["VpcId"]), (subnet, vpc))
        self.assertEqual([g["GroupId"] for g in made["SecurityGroups"]], [group])
        # The same through the primary interface, with a public address asked for.
        made = self.launch(ec2, NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet, "Groups": [group],
                                                    "AssociatePublicIpAddress": True}])
        self.assertEqual(made["SubnetId"], subnet)
        # Other accounts still have their default VPC; names in it still work.
        others = self.client("ec2", account="AKIDWITHDEFAULTVPC")
        self.launch(others, SecurityGroups=["default"])
        self.launch(others, SubnetId=default_subnet, SecurityGroups=["default"])

    def test_buckets_belong_to_the_account_that_made_them(self):
        mine, theirs = self.client("s3", account="AKIDBUCKETMINE"), self.client("s3", account="AKIDBUCKETTHEIRS")
        me = self.client("sts", account="AKIDBUCKETMINE").get_caller_identity()["Account"]
        them = self.client("sts", account="AKIDBUCKETTHEIRS").get_caller_identity()["Account"]
        self.assertRegex(me, r"^\d{12}$")
        self.assertNotEqual(me, them)
        theirs.create_bucket(Bucket="lab-squatted")
        # The name is taken; with my account as the expected owner, nothing is let through.
        code, _, status = self.error(lambda: mine.create_bucket(Bucket="lab-squatted"))
        self.assertEqual((code, status), ("BucketAlreadyExists", 409))
        code, _, status = self.error(lambda: mine.put_object(Bucket="lab-squatted", Key="k", Body=b"x",
                                                             ExpectedBucketOwner=me))
        self.assertEqual((code, status), ("AccessDenied", 403))
        self.assertEqual(self.error(lambda: mine.head_bucket(Bucket="lab-squatted", ExpectedBucketOwner=me))[2], 403)
        # Without the condition, the squatter's open bucket takes the object.
        mine.put_object(Bucket="lab-squatted", Key="k", Body=b"x")
        theirs.head_object(Bucket="lab-squatted", Key="k", ExpectedBucketOwner=them)
        # My own bucket, with my account expected.
        mine.create_bucket(Bucket="lab-mine")
        mine.put_object(Bucket="lab-mine", Key="k", Body=b"x", ExpectedBucketOwner=me)

    def test_reset_forgets_tokens_and_keeps_the_key_pairs(self):
        ec2 = self.ec2()
        first = self.launch(ec2, ClientToken="reset-1")["InstanceId"]
        urllib.request.urlopen(urllib.request.Request(self.url + "/moto-api/reset", method="POST"))
        again = self.launch(ec2, ClientToken="reset-1")["InstanceId"]
        self.assertNotEqual(first, again)


if __name__ == "__main__":
    unittest.main()
