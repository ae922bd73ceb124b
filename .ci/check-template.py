"""Checks what template.yaml must say that `sam validate --lint` and cfn-lint
do not check: neither refuses a wrong InvokeMode inside FunctionUrlConfig."""

import sys

from cfnlint.decode import decode

EXPECTED = {
    ("Metadata", "BuildMethod"): "rust-cargolambda",
    ("Properties", "Runtime"): "provided.al2023",
    ("Properties", "Architectures"): ["arm64"],
    ("Properties", "FunctionUrlConfig", "AuthType"): "AWS_IAM",
    ("Properties", "FunctionUrlConfig", "InvokeMode"): "RESPONSE_STREAM",
}


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
    if failures:
        sys.exit(f"{path}:\n  " + "\n  ".join(failures))
    print(f"{path}: streaming Function URL with IAM auth, arm64 provided.al2023, built by cargo-lambda")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
