"""Parses Prometheus text (stdin) with Prometheus' own Python client, as a
scraper would, and prints what it read as JSON: one object per metric family,
{"name", "type", "unit", "samples": [{"name", "labels", "value"}]}. A text the
parser refuses fails here, with its error."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

families = [
    {
        "name": family.name,
        "type": family.type,
        "unit": family.unit,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
    for family in text_string_to_metric_families(sys.stdin.read())
]
json.dump(families, sys.stdout)
