"""Fills moto with N instances of a product spread over regions, tagged like cerveza's.

    fill.py PRODUCT COUNT REGION...
"""
import sys

import boto3

product, count, regions = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
per_region = count // len(regions)
for region in regions:
    ec2 = boto3.client("ec2", region_name=region)
    made = 0
    while made < per_region:
        batch = min(100, per_region - made)
        out = ec2.run_instances(
            ImageId="ami-a6f504cf", MinCount=batch, MaxCount=batch, InstanceType="t3.micro",
            Placement={"AvailabilityZone": region + "a"},
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "cerveza:product", "Value": product},
                {"Key": "cerveza:profile", "Value": "Bench"},
            ]}],
        )
        # Hostnames are per instance, so tag after launch.
        for n, inst in enumerate(out["Instances"]):
            host = f"{region.replace('-', '')}-h{made + n:04d}"
            ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[
                {"Key": "Name", "Value": host}, {"Key": "cerveza:host", "Value": host}])
        made += batch
print(f"filled {per_region * len(regions)} instances", file=sys.stderr)
