"""Checks what template.yaml must say that `sam validate --lint` and cfn-lint
do not check: neither refuses a wrong InvokeMode inside FunctionUrlConfig,
and neither knows the key schema the host's DynamoDB history expects
(host/src/history/dynamo.rs)."""

import sys

from cfnlint.decode import decode

EXPECTED = {
    ("Metadata", "BuildMethod"): "rust-cargolambda",
    ("Properties", "Runtime"): "provided.al2023",
    ("Properties", "Architectures"): ["arm64"],
    ("Properties", "FunctionUrlConfig", "AuthType"): "AWS_IAM",
    ("Properties", "FunctionUrlConfig", "InvokeMode"): "RESPONSE_STREAM",
}


def check_history_table(template, function):
    table = template["Resources"].get("ConversationTable", {}).get("Properties", {})
    keys = {key["AttributeName"]: key["KeyType"] for key in table.get("KeySchema", [])}
    types = {attribute["AttributeName"]: attribute["AttributeType"] for attribute in table.get("AttributeDefinitions", [])}
    failures = []
    if keys != {"conversation": "HASH", "turn": "RANGE"} or types != {"conversation": "S", "turn": "N"}:
        failures.append(f"ConversationTable keys are {keys} {types}, expected conversation (S, HASH) and turn (N, RANGE)")
    if table.get("TimeToLiveSpecification", {}).get("AttributeName") != "expiresAt":
        failures.append("ConversationTable's TTL attribute must be expiresAt")
    variables = function["Properties"]["Environment"]["Variables"]
    if variables.get("STREAMHOST_HISTORY_TABLE") != {"Ref": "ConversationTable"}:
        failures.append("STREAMHOST_HISTORY_TABLE must be !Ref ConversationTable")
    return failures


def main(path):
    template, problems = decode(path)
    if problems:
        sys.exit(f"{path}: {problems}")
    function = template["Resources"]["StreamhostFunction"]
    failures = []
    for keys, expected in EXPECTED.items():
        value = function
        for key in keys:
            value = value.get(key, {}) if isinstance(value, dict) else {}
        if value != expected:
            failures.append(f"StreamhostFunction.{'.'.join(keys)} is {value!r}, expected {expected!r}")
    failures.extend(check_history_table(template, function))
    if failures:
        sys.exit(f"{path}:\n  " + "\n  ".join(failures))
    print(f"{path}: streaming Function URL with IAM auth, arm64 provided.al2023, built by cargo-lambda, conversations in DynamoDB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
