"""Checks what template.yaml must say that `sam validate --lint` and cfn-lint
do not check: neither refuses a wrong InvokeMode inside FunctionUrlConfig;
neither knows the key schemas the host's DynamoDB history and runs expect
(host/src/history/dynamo.rs, the run store) nor the environment that names
them; neither checks that a grant is as narrow as intended (the function's
role may invoke only the function itself, publish only sendChunk, touch the
runs table only with the calls the run store makes); and neither looks for
the local files that `sam build`/`sam package` upload for the AppSync API."""

import fnmatch
import os
import sys

from cfnlint.decode import decode

EXPECTED = {
    ("Metadata", "BuildMethod"): "rust-cargolambda",
    ("Properties", "Runtime"): "provided.al2023",
    ("Properties", "Architectures"): ["arm64"],
    ("Properties", "FunctionUrlConfig", "AuthType"): "AWS_IAM",
    ("Properties", "FunctionUrlConfig", "InvokeMode"): "RESPONSE_STREAM",
    # Lambda's maximum: the longest a stream or a run (one asynchronous
    # invocation) can last.
    ("Properties", "Timeout"): 900,
    # A retried run would send its chunks to subscribers twice.
    ("Properties", "EventInvokeConfig", "MaximumRetryAttempts"): 0,
}

# The role SAM makes for StreamhostFunction (no Role given): <logical id>Role.
FUNCTION_ROLE = "StreamhostFunctionRole"

# The self-invoke grant: the function's ARN, bare and with a version or alias
# qualifier (the ARN it was invoked by may carry one).
SELF_INVOKE_RESOURCES = [
    {"Fn::GetAtt": ["StreamhostFunction", "Arn"]},
    {"Fn::Sub": "${StreamhostFunction.Arn}:*"},
]

# What the run store does with its table, and nothing more (no Scan, no
# DeleteItem: items leave by TTL).
RUNS_TABLE_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
}

# The resources that exist only with AppSyncApi: "true".
APPSYNC_RESOURCES = {
    "AWS::AppSync::GraphQLApi",
    "AWS::AppSync::GraphQLSchema",
    "AWS::AppSync::ApiKey",
    "AWS::AppSync::DataSource",
    "AWS::AppSync::Resolver",
}


def as_list(value):
    return value if isinstance(value, list) else [value]


def statements(policies):
    """The statements of a SAM Policies list (inline documents only), with
    each !If's branches counted as statements and AWS::NoValue dropped."""
    found = []

    def add(statement):
        if isinstance(statement, dict) and set(statement) == {"Fn::If"}:
            for branch in statement["Fn::If"][1:]:
                add(branch)
        elif isinstance(statement, dict) and statement != {"Ref": "AWS::NoValue"}:
            found.append(statement)

    for policy in as_list(policies or []):
        if isinstance(policy, dict):
            for statement in as_list(policy.get("Statement", [])):
                add(statement)
    return found


def role_statements(role):
    found = []
    for policy in role.get("Properties", {}).get("Policies", []):
        found.extend(statements([policy.get("PolicyDocument", {})]))
    return found


def check_table(template, name, hash_key, range_key):
    table = template["Resources"].get(name, {}).get("Properties", {})
    keys = {key["AttributeName"]: key["KeyType"] for key in table.get("KeySchema", [])}
    types = {attribute["AttributeName"]: attribute["AttributeType"] for attribute in table.get("AttributeDefinitions", [])}
    failures = []
    if keys != {hash_key[0]: "HASH", range_key[0]: "RANGE"} or types != dict([hash_key, range_key]):
        failures.append(
            f"{name} keys are {keys} {types}, expected {hash_key[0]} ({hash_key[1]}, HASH) and {range_key[0]} ({range_key[1]}, RANGE)"
        )
    ttl = table.get("TimeToLiveSpecification", {})
    if ttl.get("AttributeName") != "expiresAt" or ttl.get("Enabled") is not True:
        failures.append(f"{name} must have TTL enabled on expiresAt")
    return failures


def check_history_table(template, function):
    failures = check_table(template, "ConversationTable", ("conversation", "S"), ("turn", "N"))
    variables = function["Properties"]["Environment"]["Variables"]
    if variables.get("STREAMHOST_HISTORY_TABLE") != {"Ref": "ConversationTable"}:
        failures.append("STREAMHOST_HISTORY_TABLE must be !Ref ConversationTable")
    return failures


def check_runs(template, function):
    failures = check_table(template, "RunsTable", ("run", "S"), ("seq", "N"))
    table = template["Resources"].get("RunsTable", {}).get("Properties", {})
    if table.get("BillingMode") != "PAY_PER_REQUEST":
        failures.append("RunsTable must be on-demand (BillingMode: PAY_PER_REQUEST)")
    variables = function["Properties"]["Environment"]["Variables"]
    if variables.get("STREAMHOST_RUNS_TABLE") != {"Ref": "RunsTable"}:
        failures.append("STREAMHOST_RUNS_TABLE must be !Ref RunsTable")
    if variables.get("STREAMHOST_RUNS_TTL_SECS") != {"Ref": "RunsTtlSeconds"}:
        failures.append("STREAMHOST_RUNS_TTL_SECS must be !Ref RunsTtlSeconds")
    ttl = template.get("Parameters", {}).get("RunsTtlSeconds", {})
    if ttl.get("Type") != "Number":
        failures.append("parameter RunsTtlSeconds must be a Number (seconds)")
    for statement in statements(function["Properties"].get("Policies")):
        if {"Fn::GetAtt": ["RunsTable", "Arn"]} in as_list(statement.get("Resource")):
            extra = set(as_list(statement.get("Action"))) - RUNS_TABLE_ACTIONS
            if extra:
                failures.append(f"the function may only {sorted(RUNS_TABLE_ACTIONS)} on RunsTable, not {sorted(extra)}")
    return failures


def grants_lambda(action):
    """Whether an action (wildcards included) covers any lambda: action."""
    action = str(action).lower()
    return action.startswith("lambda:") or fnmatch.fnmatchcase("lambda:invokefunction", action)


def role_policies(template, role):
    """The policy resources attached to a role by name: (logical id,
    resource, its statements)."""
    attached = []
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        kind = resource.get("Type")
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            roles = as_list(properties.get("Roles", []))
        elif kind == "AWS::IAM::RolePolicy":
            roles = [properties.get("RoleName")]
        else:
            continue
        if {"Ref": role} in roles:
            attached.append((name, resource, statements([properties.get("PolicyDocument", {})])))
    return attached


def check_self_invoke(template, function):
    """A run is an asynchronous invocation of the function itself, on the ARN
    it was invoked by. The function has no fixed name (one would replace an
    existing stack's function and Function URL), so the grant is a policy
    resource of its own on SAM's role (inside the function's Policies,
    !GetAtt StreamhostFunction.Arn would be circular): lambda:InvokeFunction
    on the function's ARN, bare and qualified, and no other lambda: grant."""
    properties = function["Properties"]
    failures = []
    if "FunctionName" in properties:
        failures.append("StreamhostFunction must have no FunctionName: naming it replaces an existing stack's function and Function URL")
    if "Role" in properties:
        return failures + [f"StreamhostFunction must have no Role: its grants are checked on SAM's {FUNCTION_ROLE}"]

    # The function's own Policies: inline documents only (a SAM policy
    # template or a managed policy could grant anything), none touching Lambda.
    for policy in as_list(properties.get("Policies") or []):
        if not (isinstance(policy, dict) and "Statement" in policy):
            failures.append(f"StreamhostFunction.Policies may hold inline documents only, not {policy!r}")
    inline = statements(properties.get("Policies"))
    attached = role_policies(template, FUNCTION_ROLE)
    for where, found in [("StreamhostFunction.Policies", inline)] + [(name, found) for name, _, found in attached]:
        for statement in found:
            if statement.get("Effect") != "Allow":
                continue
            if "NotAction" in statement or "NotResource" in statement:
                failures.append(f"{where}: an Allow with NotAction or NotResource grants more than it names")
            actions = as_list(statement.get("Action"))
            if not any(grants_lambda(action) for action in actions):
                continue
            if where == "StreamhostFunction.Policies":
                failures.append(f"StreamhostFunction.Policies must grant nothing on Lambda (the self-invoke is its own policy resource), not {actions}")
            elif actions != ["lambda:InvokeFunction"] or not as_list(statement.get("Resource")) or any(
                resource not in SELF_INVOKE_RESOURCES for resource in as_list(statement.get("Resource"))
            ):
                failures.append(f"{where}: the function's only lambda: grant must be lambda:InvokeFunction on its own ARN, not {actions} on {statement.get('Resource')}")

    # The grant itself: both ARNs, from a policy that always exists.
    granted = []
    for name, resource, found in attached:
        for statement in found:
            if statement.get("Effect") == "Allow" and as_list(statement.get("Action")) == ["lambda:InvokeFunction"]:
                granted.extend(as_list(statement.get("Resource")))
                if "Condition" in resource:
                    failures.append(f"{name} must have no Condition: runs start with or without AppSync")
    if any(resource not in granted for resource in SELF_INVOKE_RESOURCES):
        failures.append(
            f"no policy on {FUNCTION_ROLE} grants lambda:InvokeFunction on both !GetAtt StreamhostFunction.Arn and"
            ' !Sub "${StreamhostFunction.Arn}:*": runs cannot start'
        )
    return failures


def check_appsync(template, function, folder):
    resources = template["Resources"]
    failures = []
    apis = [name for name, resource in resources.items() if resource.get("Type") == "AWS::AppSync::GraphQLApi"]
    if not apis:
        return failures
    conditions = template.get("Conditions", {})
    if conditions.get("HasAppSync") != {"Fn::Equals": [{"Ref": "AppSyncApi"}, "true"]}:
        failures.append('Condition HasAppSync must be !Equals [!Ref AppSyncApi, "true"]')
    for name, resource in resources.items():
        if resource.get("Type") in APPSYNC_RESOURCES and resource.get("Condition") != "HasAppSync":
            failures.append(f"{name} must have Condition: HasAppSync")
    api = apis[0]
    properties = resources[api]["Properties"]
    additional = [mode.get("AuthenticationType") for mode in properties.get("AdditionalAuthenticationProviders", [])]
    if properties.get("AuthenticationType") != "API_KEY" or additional != ["AWS_IAM"]:
        failures.append(f"{api}: expected API_KEY auth with AWS_IAM as the only additional mode")

    # The function publishes chunks: appsync:GraphQL on sendChunk alone.
    send_chunk = {"Fn::Sub": "${" + api + ".Arn}/types/Mutation/fields/sendChunk"}
    graphql = [s for s in statements(function["Properties"].get("Policies")) if any(str(a).lower().startswith("appsync:") for a in as_list(s.get("Action")))]
    if [(as_list(s.get("Action")), as_list(s.get("Resource"))) for s in graphql] != [(["appsync:GraphQL"], [send_chunk])]:
        failures.append(f"the function's only appsync: grant must be appsync:GraphQL on {send_chunk['Fn::Sub']}")
    variables = function["Properties"]["Environment"]["Variables"]
    if variables.get("STREAMHOST_APPSYNC_PIPELINE") != {"Ref": "AppSyncPipeline"}:
        failures.append("STREAMHOST_APPSYNC_PIPELINE must be !Ref AppSyncPipeline (the pipeline startConversation runs)")
    url = variables.get("STREAMHOST_APPSYNC_URL")
    if not (isinstance(url, dict) and url.get("Fn::If", [None])[0] == "HasAppSync" and url["Fn::If"][1] == {"Fn::GetAtt": [api, "GraphQLUrl"]}):
        failures.append(f"STREAMHOST_APPSYNC_URL must be !If [HasAppSync, !GetAtt {api}.GraphQLUrl, ...]")

    # Data sources: the function through a role that may only invoke it,
    # and NONE for sendChunk.
    sources = {
        resource["Properties"].get("Name"): (name, resource["Properties"])
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::AppSync::DataSource"
    }
    for name, source in sources.values():
        if source.get("Type") != "AWS_LAMBDA":
            continue
        if source.get("LambdaConfig", {}).get("LambdaFunctionArn") != {"Fn::GetAtt": ["StreamhostFunction", "Arn"]}:
            failures.append(f"{name} must invoke StreamhostFunction")
        role = source.get("ServiceRoleArn", {}).get("Fn::GetAtt", [None])[0]
        if resources.get(role, {}).get("Condition") != "HasAppSync":
            failures.append(f"{name}'s role {role} must have Condition: HasAppSync")
        granted = role_statements(resources.get(role, {}))
        expected = [(["lambda:InvokeFunction"], [{"Fn::GetAtt": ["StreamhostFunction", "Arn"]}])]
        if [(as_list(s.get("Action")), as_list(s.get("Resource"))) for s in granted] != expected:
            failures.append(f"{name}'s role {role} may only lambda:InvokeFunction on StreamhostFunction")

    def data_source_type(reference):
        if isinstance(reference, dict) and "Fn::GetAtt" in reference:
            return resources.get(reference["Fn::GetAtt"][0], {}).get("Properties", {}).get("Type")
        return sources.get(reference, (None, {}))[1].get("Type")

    resolvers = {
        (resource["Properties"].get("TypeName"), resource["Properties"].get("FieldName")): (name, resource["Properties"])
        for name, resource in resources.items()
        if resource.get("Type") == "AWS::AppSync::Resolver"
    }
    for field, source_type in ((("Mutation", "startConversation"), "AWS_LAMBDA"), (("Mutation", "sendChunk"), "NONE")):
        name, resolver = resolvers.get(field, (None, None))
        if resolver is None:
            failures.append(f"no resolver for {'.'.join(field)}")
            continue
        if data_source_type(resolver.get("DataSourceName")) != source_type:
            failures.append(f"{name} must use a {source_type} data source")
        if resolver.get("Runtime", {}).get("Name") != "APPSYNC_JS":
            failures.append(f"{name} must use the APPSYNC_JS runtime")

    # The local files that `sam build`/`sam package` upload.
    for name, resource in resources.items():
        for key in ("DefinitionS3Location", "CodeS3Location"):
            location = resource.get("Properties", {}).get(key)
            if isinstance(location, str) and not location.startswith("s3://"):
                if not os.path.isfile(os.path.join(folder, location)):
                    failures.append(f"{name}.{key}: {location} does not exist")
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
    failures.extend(check_runs(template, function))
    failures.extend(check_self_invoke(template, function))
    failures.extend(check_appsync(template, function, os.path.dirname(os.path.abspath(path))))
    if failures:
        sys.exit(f"{path}:\n  " + "\n  ".join(failures))
    print(
        f"{path}: streaming Function URL with IAM auth, arm64 provided.al2023, built by cargo-lambda,"
        " conversations and runs in DynamoDB, self-invocation of this function only, optional AppSync API"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
