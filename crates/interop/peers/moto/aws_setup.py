"""Sets up what the aws_iid tests need in a moto server, with boto3 (AWS_ENDPOINT_URL points it at
moto): `launch` creates a security group, a role and an instance profile holding it, and a running
instance with tags, that group and that profile, and prints them as JSON; `stop` stops an instance.
"""
import argparse
import json

import boto3


def launch(args):
    ec2 = boto3.client("ec2", region_name=args.region)
    iam = boto3.client("iam", region_name="us-east-1")
    sg_id = ec2.create_security_group(GroupName=args.sg, Description="aws_iid test")["GroupId"]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    role = iam.create_role(RoleName=args.profile, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.create_instance_profile(InstanceProfileName=args.profile)
    iam.add_role_to_instance_profile(InstanceProfileName=args.profile, RoleName=args.profile)
    image_id = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"Key": k, "Value": v} for k, v in json.loads(args.tags)]
    reservation = ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="t2.micro",
        SecurityGroupIds=[sg_id],
        IamInstanceProfile={"Name": args.profile},
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}] if tags else [],
    )
    instance = reservation["Instances"][0]
    print(json.dumps({
        "instance_id": instance["InstanceId"],
        "image_id": image_id,
        "security_group_id": sg_id,
        "security_group_name": args.sg,
        "role_arn": role["Arn"],
    }))


def stop(args):
    boto3.client("ec2", region_name=args.region).stop_instances(InstanceIds=[args.instance])


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("launch")
    p.add_argument("--region", required=True)
    p.add_argument("--tags", default="[]", help='JSON list of [key, value] pairs')
    p.add_argument("--sg", required=True)
    p.add_argument("--profile", required=True)
    p.set_defaults(run=launch)
    p = sub.add_parser("stop")
    p.add_argument("--region", required=True)
    p.add_argument("--instance", required=True)
    p.set_defaults(run=stop)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
