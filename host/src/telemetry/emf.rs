//! CloudWatch Embedded Metric Format: the metrics as JSON lines on stdout,
//! which Lambda sends to CloudWatch Logs, where CloudWatch extracts them as
//! metrics. The format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//!
//! One document (line) per data point, exported with delta temporality:
//! its attributes are its dimensions (one dimension set, all of them), its
//! value the member named after the metric. A counter's point is its
//! increase since the last export, a gauge's its value; a histogram's
//! values are its buckets' upper bounds (the last bucket's, its maximum),
//! each repeated as often as the bucket counted, at most 100 values as the
//! format allows, so CloudWatch's statistics (p50, p99) are upper-bound
//! estimates; its exact sum and count go as `<name>.sum` and `<name>.count`.
//!
//! Our own code: OpenTelemetry's Rust SDK has no EMF exporter (the AWS
//! Distro's `awsemf` is part of the Go collector).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use serde_json::{Map, Value, json};

/// The most values one metric may carry in a document (the format's limit).
const MAX_VALUES: usize = 100;

/// Writes each export as EMF documents, one per line, to `out` (stdout).
pub struct EmfExporter {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl EmfExporter {
    /// Documents in the CloudWatch namespace `namespace`, written to `out`.
    pub fn new(namespace: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        Self { namespace: namespace.into(), out: Mutex::new(out) }
    }

    fn documents(&self, metrics: &ResourceMetrics) -> Vec<Value> {
        let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        metrics
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .flat_map(points)
            .map(|point| point.document(&self.namespace, timestamp))
            .collect()
    }
}

impl PushMetricExporter for EmfExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let mut out = self.out.lock().map_err(|_| OTelSdkError::InternalFailure("stdout lock poisoned".into()))?;
        for document in self.documents(metrics) {
            writeln!(out, "{document}").map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        }
        out.flush().map_err(|error| OTelSdkError::InternalFailure(error.to_string()))
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Delta
    }
}

/// One data point of a metric: its dimensions and its members.
struct Point {
    dimensions: Vec<(String, String)>,
    /// `(name, unit, value)`: the metric's value, and for a histogram its sum and count too.
    members: Vec<(String, &'static str, Value)>,
}

impl Point {
    fn document(&self, namespace: &str, timestamp: u64) -> Value {
        let mut root = Map::new();
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), json!(value));
        }
        let mut definitions = Vec::new();
        for (name, unit, value) in &self.members {
            root.insert(name.clone(), value.clone());
            definitions.push(json!({ "Name": name, "Unit": unit }));
        }
        let dimension_set: Vec<&String> = self.dimensions.iter().map(|(name, _)| name).collect();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{ "Namespace": namespace, "Dimensions": [dimension_set], "Metrics": definitions }]
            }),
        );
        Value::Object(root)
    }
}

/// The points of `metric` with something to say (a histogram that counted
/// nothing since the last export has none).
fn points(metric: &Metric) -> Vec<Point> {
    let name = metric.name();
    let unit = cloudwatch_unit(metric.unit());
    match metric.data() {
        AggregatedMetrics::F64(data) => points_of(name, unit, data, |value| value),
        AggregatedMetrics::U64(data) => points_of(name, unit, data, |value| value as f64),
        AggregatedMetrics::I64(data) => points_of(name, unit, data, |value| value as f64),
    }
}

fn points_of<T: Copy>(name: &str, unit: &'static str, data: &MetricData<T>, as_f64: impl Fn(T) -> f64) -> Vec<Point> {
    let single = |attributes: &mut dyn Iterator<Item = &KeyValue>, value: f64| Point {
        dimensions: dimensions(attributes),
        members: vec![(name.to_string(), unit, json!(value))],
    };
    match data {
        MetricData::Sum(sum) => {
            sum.data_points().map(|point| single(&mut point.attributes(), as_f64(point.value()))).collect()
        }
        MetricData::Gauge(gauge) => {
            gauge.data_points().map(|point| single(&mut point.attributes(), as_f64(point.value()))).collect()
        }
        MetricData::Histogram(histogram) => histogram
            .data_points()
            .filter(|point| point.count() > 0)
            .map(|point| {
                let max = point.max().map(&as_f64);
                let values = bucket_values(point.bounds().collect(), point.bucket_counts().collect(), max);
                Point {
                    dimensions: dimensions(&mut point.attributes()),
                    members: vec![
                        (name.to_string(), unit, json!(values)),
                        (format!("{name}.sum"), unit, json!(as_f64(point.sum()))),
                        (format!("{name}.count"), "Count", json!(point.count())),
                    ],
                }
            })
            .collect(),
        // Not made by any instrument here.
        MetricData::ExponentialHistogram(_) => Vec::new(),
    }
}

/// Each bucket's upper bound (the overflow bucket's: `max`) as often as it
/// counted, at most [`MAX_VALUES`] in all, spread over the buckets in
/// proportion when there are more.
fn bucket_values(bounds: Vec<f64>, counts: Vec<u64>, max: Option<f64>) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    let scale = (MAX_VALUES as f64 / total.max(1) as f64).min(1.0);
    let mut values = Vec::new();
    for (index, count) in counts.iter().enumerate() {
        let bound = bounds.get(index).copied().or(max).unwrap_or(f64::MAX);
        let repeats = ((*count as f64) * scale).ceil() as usize;
        values.extend(std::iter::repeat_n(bound, repeats.min(MAX_VALUES - values.len())));
    }
    values
}

fn dimensions(attributes: &mut dyn Iterator<Item = &KeyValue>) -> Vec<(String, String)> {
    attributes.map(|pair| (pair.key.to_string(), pair.value.as_str().into_owned())).collect()
}

/// A CloudWatch unit for a UCUM unit of the instruments.
fn cloudwatch_unit(unit: &str) -> &'static str {
    match unit {
        "s" => "Seconds",
        "ms" => "Milliseconds",
        "By" => "Bytes",
        _ => "Count",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_values_repeat_each_bound_as_often_as_it_counted() {
        assert_eq!(bucket_values(vec![1.0, 2.0], vec![2, 0, 1], Some(7.5)), [1.0, 1.0, 7.5]);
    }

    #[test]
    fn more_than_a_hundred_values_are_scaled_down_to_a_hundred() {
        let values = bucket_values(vec![1.0, 2.0], vec![1000, 1000, 0], None);
        assert_eq!(values.len(), MAX_VALUES);
        assert_eq!(values.iter().filter(|value| **value == 1.0).count(), 50);
    }
}
