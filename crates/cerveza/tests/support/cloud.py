"""Reads (and, for setup, writes) the emulated cloud with boto3, independently of
cerveza's own code, so integration tests check the real end state.

    cloud.py state PRODUCT REGION...        JSON: instances, volumes, Elastic IPs of PRODUCT, registry items
    cloud.py foreign REGION ZONE NAME       launch an instance tagged only Name=NAME
    cloud.py user-data REGION INSTANCE      the instance's user-data bytes
    cloud.py sg-rule REGION CIDR            a security group letting CIDR in on 3306; prints its id
    cloud.py sg-delete REGION GROUP         deletes it
    cloud.py registry-resilience on|off     point-in-time recovery and two MRSC replicas, or none
    cloud.py registry-set PRODUCT HOST ATTR VALUE   overwrites one attribute of a record
    cloud.py volume REGION ZONE PRODUCT HOST        a data volume tagged for HOST; prints its id
    cloud.py eip REGION PRODUCT HOST        an Elastic IP tagged for HOST, associated with nothing
    cloud.py unlisted ACCOUNT REGION ID     waits until ACCOUNT's reads no longer show instance ID
    cloud.py snapshots PRODUCT REGION       JSON: the product's snapshots (state, volume, tags)
    cloud.py delete-snapshot REGION ID      deletes a snapshot (a set member lost)
    cloud.py iam-users NAME=POLICY_FILE...  IAM users with keys and policies (a lab that enforces IAM)
    cloud.py iam-actions ACCOUNT            the IAM actions ACCOUNT's requests needed, JSON
    cloud.py requests ACCOUNT [ACTION]      requests the lab had from ACCOUNT (of one service:action)
    cloud.py limits ACCOUNT REGION JSON     sets the lab's capacity and quotas for ACCOUNT (an access
                                            key id) in REGION (scripts/labcloud.py, POST /lab-api/limits)
"""
import json
import os
import random
import sys
import time

# The lab cloud throttles as EC2 does; retry as a careful script would.
os.environ.setdefault("AWS_RETRY_MODE", "standard")
os.environ.setdefault("AWS_MAX_ATTEMPTS", "10")

import boto3  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402



def _oracle(request, **_):
    # The lab cloud shows this reader the truth at once (no consistency delay, no
    # throttling): the tests check the end state, not how EC2 shows it to a client.
    request.headers["x-lab-oracle"] = "1"


_client = boto3.client


def client(*args, **kwargs):
    c = _client(*args, **kwargs)
    c.meta.events.register("before-sign", _oracle)
    return c


boto3.client = client

TABLE = "cerveza-hosts"
# The lab's AMIs exist in their own region only (UbuntuGeneric32Bit, examples/profiles).
AMI = {"us-east-1": "ami-a6f504cf", "us-west-1": "ami-957e2ed0", "ap-southeast-1": "ami-7c423c2e",
       "ap-northeast-1": "ami-3a0fa43b", "eu-west-1": "ami-4290a936"}


def launch(ec2, region, zone, tags=None):
    """Launches one instance and waits until it is visible and running (the lab cloud, like
    EC2, shows a new instance only after a while, and pending at first)."""
    args = {"ImageId": AMI[region], "MinCount": 1, "MaxCount": 1, "Placement": {"AvailabilityZone": zone}}
    if tags:
        args["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tags}]
    iid = ec2.run_instances(**args)["Instances"][0]["InstanceId"]
    until(lambda: ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"],
          "running")
    return iid


def until(read, want, limit=60):
    deadline = time.monotonic() + limit
    while True:
        try:
            got = read()
        except ClientError as e:
            got = e.response["Error"]["Code"]
        if got == want:
            return
        if time.monotonic() > deadline:
            sys.exit(f"cloud.py: still {got!r} after {limit}s, waiting for {want!r}")
        time.sleep(0.2)


def state(product, regions):
    instances = []
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region)
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:cerveza:product", "Values": [product]}]
        )
        for page in pages:
            for res in page["Reservations"]:
                for i in res["Instances"]:
                    instances.append({
                        "id": i["InstanceId"],
                        "region": region,
                        "zone": i["Placement"]["AvailabilityZone"],
                        "state": i["State"]["Name"],
                        "type": i["InstanceType"],
                        "image": i["ImageId"],
                        "metadata": {"tokens": i.get("MetadataOptions", {}).get("HttpTokens"),
                                     "hops": i.get("MetadataOptions", {}).get("HttpPutResponseHopLimit")},
                        "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                        "vpc": i.get("VpcId"),
                        "subnet": i.get("SubnetId"),
                        # EC2 lists the primary interface's groups as the instance's;
                        # moto only on the interface when it was given one.
                        "groups": sorted({g["GroupId"] for g in i.get("SecurityGroups", []) + [
                            g for n in i.get("NetworkInterfaces", [])
                            if n.get("Attachment", {}).get("DeviceIndex") == 0
                            for g in n.get("Groups", [])]}),
                        "public_ip": i.get("PublicIpAddress"),
                    })
    volumes = []
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region)
        for v in ec2.describe_volumes(
            Filters=[{"Name": "tag:cerveza:product", "Values": [product]}]
        )["Volumes"]:
            volumes.append({
                "id": v["VolumeId"],
                "zone": v["AvailabilityZone"],
                "state": v["State"],
                "attached_to": [a["InstanceId"] for a in v.get("Attachments", [])],
                "snapshot": v.get("SnapshotId") or None,
                "tags": {t["Key"]: t["Value"] for t in v.get("Tags", [])},
            })
    addresses = []
    for region in regions:
        ec2 = boto3.client("ec2", region_name=region)
        for a in ec2.describe_addresses(
            Filters=[{"Name": "tag:cerveza:product", "Values": [product]}]
        )["Addresses"]:
            addresses.append({
                "allocation": a["AllocationId"],
                "ip": a["PublicIp"],
                "instance": a.get("InstanceId"),
                "tags": {t["Key"]: t["Value"] for t in a.get("Tags", [])},
            })
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    registry = []
    try:
        items = ddb.query(
            TableName=TABLE,
            KeyConditionExpression="product = :p",
            ExpressionAttributeValues={":p": {"S": product}},
            ConsistentRead=True,
        )["Items"]
        for item in items:
            registry.append({k: list(v.values())[0] for k, v in item.items()})
    except ddb.exceptions.ResourceNotFoundException:
        pass
    print(json.dumps({"instances": instances, "volumes": volumes, "addresses": addresses,
                      "registry": registry}))


def user_data(region, instance_id):
    """Writes the instance's user-data, base64-decoded, to stdout."""
    import base64
    ec2 = boto3.client("ec2", region_name=region)
    value = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    sys.stdout.buffer.write(base64.b64decode(value))


def default_vpc(region):
    ec2 = boto3.client("ec2", region_name=region)
    print(ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"])


def vpc(region):
    """A VPC of its own, as an organisation sets one up: in zone a a private and a public
    subnet, in zone b a private one, none in zone c; a `web` group beside the VPC's
    `default`. Prints the ids as JSON."""
    ec2 = client("ec2", region_name=region)
    octet = random.randint(16, 250)
    vpc_id = ec2.create_vpc(CidrBlock=f"10.{octet}.0.0/16")["Vpc"]["VpcId"]
    subnets = {}
    for n, (zone, tier) in enumerate([("a", "private"), ("a", "public"), ("b", "private")]):
        sid = ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.{octet}.{n}.0/24",
                                AvailabilityZone=region + zone)["Subnet"]["SubnetId"]
        ec2.create_tags(Resources=[sid], Tags=[{"Key": "tier", "Value": tier}])
        subnets[f"{tier}-{zone}"] = sid
    web = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc_id)["GroupId"]
    default = ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]},
        {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    print(json.dumps({"vpc": vpc_id, "subnets": subnets, "groups": {"web": web, "default": default}}))


def route53(zone):
    """A records of a hosted zone, as JSON {name: [addresses]}, and whether it is private."""
    r53 = boto3.client("route53", region_name="us-east-1")
    zones = [z for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == zone + "."]
    out = {"zones": [{"private": z["Config"]["PrivateZone"]} for z in zones], "records": {}, "txt": {}}
    for z in zones:
        for rs in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]:
            kind = {"A": "records", "TXT": "txt"}.get(rs["Type"])
            if kind:
                out[kind][rs["Name"].rstrip(".")] = [r["Value"] for r in rs["ResourceRecords"]]
    print(json.dumps(out))


def snapshots(product, region):
    """The product's snapshots in REGION, as JSON: id, volume, state, size and tags."""
    ec2 = boto3.client("ec2", region_name=region)
    out = []
    for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "tag:cerveza:product", "Values": [product]}])["Snapshots"]:
        out.append({"id": s["SnapshotId"], "volume": s.get("VolumeId"), "state": s["State"],
                    "size": s["VolumeSize"], "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])}})
    print(json.dumps(sorted(out, key=lambda s: s["tags"].get("cerveza:device", ""))))


def public_zone(name):
    """A public hosted zone NAME of the user's (a delegated domain), holding names that
    are not cerveza's: www.NAME and clash01.NAME (A records). Prints the zone id."""
    r53 = boto3.client("route53", region_name="us-east-1")
    zid = r53.create_hosted_zone(Name=name, CallerReference=f"user-{name}-{time.time()}",
                                 HostedZoneConfig={"Comment": "the user's", "PrivateZone": False})["HostedZone"]["Id"]
    r53.change_resource_record_sets(HostedZoneId=zid, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": f"{h}.{name}.", "Type": "A", "TTL": 300,
                                                     "ResourceRecords": [{"Value": ip}]}}
        for h, ip in (("www", "192.0.2.10"), ("clash01", "192.0.2.11"))]})
    print(zid.split("/")[-1])


def route53_vpcs(zone):
    """The VPCs (region, id) a private hosted zone is associated with, as JSON."""
    r53 = boto3.client("route53", region_name="us-east-1")
    out = []
    for z in [z for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == zone + "."]:
        out += [[v["VPCRegion"], v["VPCId"]] for v in r53.get_hosted_zone(Id=z["Id"]).get("VPCs", [])]
    print(json.dumps(sorted(out)))


def route53_clear(zone):
    """Deletes every A record of a hosted zone (someone cleaned it by hand)."""
    r53 = boto3.client("route53", region_name="us-east-1")
    for z in [z for z in r53.list_hosted_zones()["HostedZones"] if z["Name"] == zone + "."]:
        changes = [{"Action": "DELETE", "ResourceRecordSet": rs}
                   for rs in r53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]
                   if rs["Type"] == "A"]
        if changes:
            r53.change_resource_record_sets(HostedZoneId=z["Id"], ChangeBatch={"Changes": changes})


def state_of(region, instance_id):
    ec2 = boto3.client("ec2", region_name=region)
    print(ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"])


def tagged(region, zone, *pairs):
    """Launch an instance with exactly these tags (KEY=VALUE ...), return its id."""
    ec2 = boto3.client("ec2", region_name=region)
    tags = [dict(zip(("Key", "Value"), p.split("=", 1))) for p in pairs]
    print(launch(ec2, region, zone, tags))


def blocker(region, zone, product, host, device):
    """A volume tagged as `host`'s `device` but attached to someone else's instance."""
    ec2 = boto3.client("ec2", region_name=region)
    other = launch(ec2, region, zone)
    tags = {"cerveza:product": product, "cerveza:host": host, "cerveza:device": device,
            "cerveza:volume-profile": "MysqlRaid10", "Name": host}
    vol = ec2.create_volume(AvailabilityZone=zone, Size=100, VolumeType="gp3", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}])["VolumeId"]
    until(lambda: ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]["State"], "available")
    ec2.attach_volume(VolumeId=vol, InstanceId=other, Device="/dev/sdz")
    print(vol)


def detach(region, volume):
    ec2 = boto3.client("ec2", region_name=region)
    att = ec2.describe_volumes(VolumeIds=[volume])["Volumes"][0]["Attachments"][0]
    ec2.detach_volume(VolumeId=volume, InstanceId=att["InstanceId"], Device=att["Device"])


def stop(region, instance_id):
    """Stops an instance straight through EC2, as someone at the console would, and
    waits until it is stopped; cerveza's registry hears nothing of it."""
    ec2 = boto3.client("ec2", region_name=region)
    ec2.stop_instances(InstanceIds=[instance_id])
    until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"],
          "stopped")


def account(key):
    """The account id the lab gives access key `key` (sts:GetCallerIdentity)."""
    sts = _client("sts", region_name="us-east-1", aws_access_key_id=key,
                  aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"))
    print(sts.get_caller_identity()["Account"])


def squat(region, bucket):
    """Another account makes `bucket` first (bucket names are global)."""
    s3 = _client("s3", region_name=region, aws_access_key_id="AKID-SQUATTER",
                 aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"))
    kwargs = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **kwargs)


def s3_keys(region, bucket):
    s3 = boto3.client("s3", region_name=region)
    print(json.dumps([o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]))


def s3_head(region, bucket, key):
    s3 = boto3.client("s3", region_name=region)
    h = s3.head_object(Bucket=bucket, Key=key)
    print(json.dumps({"size": h["ContentLength"], "metadata": h.get("Metadata", {})}))


def s3_corrupt(region, bucket, key):
    """Replace the object's bytes but keep its recorded sha256."""
    s3 = boto3.client("s3", region_name=region)
    meta = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
    s3.put_object(Bucket=bucket, Key=key, Body=b"tampered\n", Metadata=meta)


def foreign(region, zone, name):
    ec2 = boto3.client("ec2", region_name=region)
    print(launch(ec2, region, zone, [{"Key": "Name", "Value": name}]))


def sg_rule(region, cidr):
    ec2 = boto3.client("ec2", region_name=region)
    name = "doctor-%d" % time.time_ns()
    gid = ec2.create_security_group(GroupName=name, Description="doctor test")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": cidr}]}])
    print(gid)


def sg_delete(region, group):
    boto3.client("ec2", region_name=region).delete_security_group(GroupId=group)


def registry_resilience(state):
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    on = state == "on"
    ddb.update_continuous_backups(
        TableName=TABLE, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": on})
    replicas = ["us-east-2", "us-west-2"]
    if on:
        ddb.update_table(TableName=TABLE, MultiRegionConsistency="STRONG",
                         ReplicaUpdates=[{"Create": {"RegionName": r}} for r in replicas])
    else:
        ddb.update_table(TableName=TABLE, ReplicaUpdates=[{"Delete": {"RegionName": r}} for r in replicas])


def registry_set(product, host, attr, value):
    boto3.client("dynamodb", region_name="us-east-1").update_item(
        TableName=TABLE, Key={"product": {"S": product}, "hostname": {"S": host}},
        UpdateExpression="SET #a = :v", ExpressionAttributeNames={"#a": attr},
        ExpressionAttributeValues={":v": {"S": value}})


def volume(region, zone, product, host):
    ec2 = boto3.client("ec2", region_name=region)
    tags = [{"Key": "cerveza:product", "Value": product}, {"Key": "cerveza:host", "Value": host},
            {"Key": "cerveza:device", "Value": "/dev/sdf"}]
    vid = ec2.create_volume(AvailabilityZone=zone, Size=10, TagSpecifications=[
        {"ResourceType": "volume", "Tags": tags}])["VolumeId"]
    until(lambda: ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"], "available")
    print(vid)


def eip(region, product, host):
    ec2 = boto3.client("ec2", region_name=region)
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.create_tags(Resources=[alloc], Tags=[{"Key": "cerveza:product", "Value": product},
                                            {"Key": "cerveza:host", "Value": host}])
    print(alloc)


def kms_key(region, state):
    """A new KMS key, enabled or disabled; prints its id."""
    kms = boto3.client("kms", region_name=region)
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    if state == "disabled":
        kms.disable_key(KeyId=key)
    print(key)


def kms_set(region, key, state):
    kms = boto3.client("kms", region_name=region)
    (kms.enable_key if state == "enabled" else kms.disable_key)(KeyId=key)


def ebs_default(account, region, key):
    """Turns on EBS encryption by default for `account` (an access key id) with `key`."""
    ec2 = boto3.client("ec2", region_name=region, aws_access_key_id=account,
                       aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"))
    ec2.enable_ebs_encryption_by_default()
    ec2.modify_ebs_default_kms_key_id(KmsKeyId=key)


def unlisted(account, region, instance_id):
    """Waits until the instance has left the listings as `account` sees them (not the
    oracle's view, which keeps everything)."""
    ec2 = _client("ec2", region_name=region, aws_access_key_id=account,
                  aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "x"))
    until(lambda: ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"],
          "InvalidInstanceID.NotFound")


def requests(account, action=None):
    """How many requests the lab cloud has had from `account` (its access key), in all
    or of one "service:action" (ec2:RunInstances)."""
    import urllib.request
    url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/lab-api/stats"
    stats = json.loads(urllib.request.urlopen(url).read())
    if action:
        print(stats["requests-by-account"].get(f"{account} {action}", 0))
    else:
        print(stats["by-account"].get(account, 0))


def iam_users(*specs):
    """Users NAME=POLICY_FILE (an IAM policy document; "*" for everything), each with an
    access key, on a lab cloud that enforces IAM (INITIAL_NO_AUTH_ACTION_COUNT: these are
    its first requests). Prints {name: {"id": …, "secret": …}}."""
    iam = boto3.client("iam", region_name="us-east-1")
    out = {}
    for spec in specs:
        name, path = spec.split("=", 1)
        doc = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"}]}) if path == "*" else open(path).read()
        iam.create_user(UserName=name)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        iam.put_user_policy(UserName=name, PolicyName="cerveza", PolicyDocument=doc)
        out[name] = {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    print(json.dumps(out))


def iam_actions(account):
    """The IAM actions the lab cloud's requests from `account` needed, as JSON {action: n}."""
    import urllib.request
    url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/lab-api/stats"
    stats = json.loads(urllib.request.urlopen(url).read())["iam-by-account"]
    print(json.dumps({k.split(" ", 1)[1]: n for k, n in stats.items() if k.startswith(account + " ")}))


def limits(account, region, text):
    import urllib.request
    body = dict(json.loads(text), account=account, region=region)
    req = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/lab-api/limits",
                                 data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(req).read()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "state":
        state(args[0], args[1:])
    elif cmd == "user-data":
        user_data(*args)
    elif cmd == "default-vpc":
        default_vpc(*args)
    elif cmd == "vpc":
        vpc(*args)
    elif cmd == "iam-users":
        iam_users(*args)
    elif cmd == "iam-actions":
        iam_actions(*args)
    elif cmd == "snapshots":
        snapshots(*args)
    elif cmd == "delete-snapshot":
        client("ec2", region_name=args[0]).delete_snapshot(SnapshotId=args[1])
    elif cmd == "public-zone":
        public_zone(*args)
    elif cmd == "route53-vpcs":
        route53_vpcs(*args)
    elif cmd == "route53-clear":
        route53_clear(*args)
    elif cmd == "route53":
        route53(*args)
    elif cmd == "blocker":
        blocker(*args)
    elif cmd == "detach":
        detach(*args)
    elif cmd == "stop":
        stop(*args)
    elif cmd == "account":
        account(*args)
    elif cmd == "squat":
        squat(*args)
    elif cmd == "s3-keys":
        s3_keys(*args)
    elif cmd == "s3-head":
        s3_head(*args)
    elif cmd == "s3-corrupt":
        s3_corrupt(*args)
    elif cmd == "state-of":
        state_of(*args)
    elif cmd == "tagged":
        tagged(*args)
    elif cmd == "foreign":
        foreign(*args)
    elif cmd == "sg-rule":
        sg_rule(*args)
    elif cmd == "sg-delete":
        sg_delete(*args)
    elif cmd == "registry-resilience":
        registry_resilience(*args)
    elif cmd == "registry-set":
        registry_set(*args)
    elif cmd == "volume":
        volume(*args)
    elif cmd == "eip":
        eip(*args)
    elif cmd == "kms-key":
        kms_key(*args)
    elif cmd == "kms-set":
        kms_set(*args)
    elif cmd == "ebs-default":
        ebs_default(*args)
    elif cmd == "unlisted":
        unlisted(*args)
    elif cmd == "requests":
        requests(*args)
    elif cmd == "limits":
        limits(*args)
    else:
        sys.exit(f"unknown command {cmd}")
