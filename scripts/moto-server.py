"""moto's server, with the one AWS behaviour aliasflow's ownership checks rely on that moto 5.2.5
lacks: CloudFormation gives an AWS::Lambda::Function the `Tags` its template declares (moto's
CloudFormation drops them, so every function a stack creates would look made by someone else).
Run it as `.venv/bin/python scripts/moto-server.py -H 127.0.0.1 -p PORT`, like `moto_server`."""

import sys

from moto.awslambda.models import LambdaFunction
from moto.server import main

_create = LambdaFunction.create_from_cloudformation_json.__func__
_update = LambdaFunction.update_from_cloudformation_json.__func__


def _tags(cloudformation_json):
    tags = cloudformation_json.get("Properties", {}).get("Tags") or []
    return {tag["Key"]: tag["Value"] for tag in tags}


def _create_tagged(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    function = _create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    function.tags.update(_tags(cloudformation_json))
    return function


def _update_tagged(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
    function = _update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
    function.tags.clear()
    function.tags.update(_tags(cloudformation_json))
    return function


LambdaFunction.create_from_cloudformation_json = classmethod(_create_tagged)
LambdaFunction.update_from_cloudformation_json = classmethod(_update_tagged)

if __name__ == "__main__":
    sys.exit(main())
