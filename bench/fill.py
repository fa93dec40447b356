"""Fills moto with N instances of a product spread over regions, tagged like cerveza's.

    fill.py PRODUCT COUNT REGION...

The profile tag is $FILL_PROFILE (default Bench, which no profile defines); the zone is
each region's first ("a").
"""
import os
import sys

import boto3

# The lab's AMIs exist in their own region (examples/profiles, UbuntuGeneric32Bit).
AMI = {"us-east-1": "ami-a6f504cf", "us-west-1": "ami-957e2ed0", "ap-southeast-1": "ami-7c423c2e",
       "ap-northeast-1": "ami-3a0fa43b", "eu-west-1": "ami-4290a936"}


def oracle(request, **_):
    # Setup, not the measured client: the lab cloud neither throttles nor hides for it.
    request.headers["x-lab-oracle"] = "1"


product, count, regions = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
per_region = count // len(regions)
for region in regions:
    ec2 = boto3.client("ec2", region_name=region)
    ec2.meta.events.register("before-sign", oracle)
    made = 0
    while made < per_region:
        batch = min(100, per_region - made)
        out = ec2.run_instances(
            ImageId=AMI[region], MinCount=batch, MaxCount=batch, InstanceType="t3.micro",
            Placement={"AvailabilityZone": region + "a"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "cerveza:product", "Value": product},
                {"Key": "cerveza:profile", "Value": os.environ.get("FILL_PROFILE", "Bench")},
                {"Key": "cerveza:zone", "Value": region + "a"},
            ]}],
        )
        # Hostnames are per instance, so tag after launch.
        for n, inst in enumerate(out["Instances"]):
            host = f"{region.replace('-', '')}-h{made + n:04d}"
            ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[
                {"Key": "Name", "Value": host}, {"Key": "cerveza:host", "Value": host}])
        made += batch
print(f"filled {per_region * len(regions)} instances", file=sys.stderr)
