"""Checks CloudWatch Embedded Metric Format documents (one per line on
stdin; lines that are not EMF documents are skipped) against the format's
specification: the schema in emf.schema.json, then what a schema cannot say:
each dimension a MetricDirective names is a string member of the root, each
metric a number or an array of at most 100 numbers. Prints the documents it
checked as a JSON array; a document that breaks a rule fails here, naming it."""

import json
import pathlib
import sys

import jsonschema

schema = json.loads((pathlib.Path(__file__).parent / "emf.schema.json").read_text())
checked = []
for line in sys.stdin:
    try:
        document = json.loads(line)
    except ValueError:
        continue
    if not isinstance(document, dict) or "_aws" not in document:
        continue
    jsonschema.validate(document, schema)
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for dimension in dimension_set:
                assert isinstance(document.get(dimension), str), f"dimension {dimension} is not a string member: {line}"
        for metric in directive["Metrics"]:
            value = document.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            assert 1 <= len(values) <= 100, f"{metric['Name']}: {len(values)} values: {line}"
            assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values), f"{metric['Name']}: {line}"
    checked.append(document)
json.dump(checked, sys.stdout)
