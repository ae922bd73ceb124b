//! Metrics and traces, with OpenTelemetry (the `opentelemetry` crates and
//! `tracing-opentelemetry`): what the instruments record is in
//! [`instruments`]; here they are exported.
//!
//! - **Prometheus**: always, in this process's registry, read as the text
//!   exposition format by `GET /metrics` on `serve` ([`prometheus_text`]).
//! - **OTLP** over HTTP (protobuf), metrics and traces, when the standard
//!   variables name a collector: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `…_TRACES_ENDPOINT`); metrics
//!   every `OTEL_METRIC_EXPORT_INTERVAL` ms (60000). The client speaks plain
//!   HTTP: send to a collector beside the host (the OpenTelemetry Collector,
//!   the ADOT Lambda layer on `localhost:4318`). Traces are the host's
//!   tracing spans (`request`, `run`, `chat {model}`).
//!
//! - **CloudWatch EMF** on Lambda ([`emf`]): JSON lines on stdout, which
//!   CloudWatch Logs turns into metrics in the namespace
//!   `STREAMHOST_EMF_NAMESPACE` (`streamhost`), written after each
//!   invocation ([`flush`]), since Lambda may freeze the process between
//!   invocations, and every minute.
//!
//! The resource's `service.name` is `OTEL_SERVICE_NAME`, else `streamhost`.

pub mod emf;
pub mod instruments;

use std::sync::OnceLock;

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus::{Registry, TextEncoder};

/// The exporters of this process, to flush at exit.
pub struct Telemetry {
    meters: SdkMeterProvider,
    tracers: Option<SdkTracerProvider>,
}

/// The Prometheus registry the meter provider writes to.
static PROMETHEUS: OnceLock<Registry> = OnceLock::new();
/// The meter provider, for [`flush`].
static METERS: OnceLock<SdkMeterProvider> = OnceLock::new();

impl Telemetry {
    /// Sets the global meter provider (Prometheus; OTLP when a collector is
    /// named; EMF on stdout when `emf`, on Lambda), and returns with it the
    /// layer that sends the tracing spans to the collector, if one is named.
    /// Call once, before any instrument records.
    pub fn init<S>(
        emf: bool,
    ) -> anyhow::Result<(Self, Option<tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>>)>
    where
        S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        let resource = resource();
        let registry = Registry::new();
        let prometheus = opentelemetry_prometheus::exporter().with_registry(registry.clone()).build()?;
        let mut meters = SdkMeterProvider::builder().with_resource(resource.clone()).with_reader(prometheus);
        if otlp_configured("METRICS") {
            let exporter = opentelemetry_otlp::MetricExporter::builder().with_http().build().context("OTLP metrics")?;
            meters = meters.with_reader(PeriodicReader::builder(exporter).build());
        }
        if emf {
            let namespace = std::env::var("STREAMHOST_EMF_NAMESPACE").unwrap_or_else(|_| "streamhost".into());
            let exporter = emf::EmfExporter::new(namespace, Box::new(std::io::stdout()));
            meters = meters.with_reader(PeriodicReader::builder(exporter).build());
        }
        let meters = meters.build();
        opentelemetry::global::set_meter_provider(meters.clone());
        let _ = PROMETHEUS.set(registry);
        let _ = METERS.set(meters.clone());
        let (tracers, layer) = if otlp_configured("TRACES") {
            let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build().context("OTLP traces")?;
            let tracers = SdkTracerProvider::builder().with_resource(resource).with_batch_exporter(exporter).build();
            let layer = tracing_opentelemetry::layer().with_tracer(tracers.tracer("streamhost"));
            (Some(tracers), Some(layer))
        } else {
            (None, None)
        };
        Ok((Self { meters, tracers }, layer))
    }

    /// Exports what is pending and stops the exporters (at exit).
    pub fn shutdown(self) {
        let _ = self.meters.shutdown();
        if let Some(tracers) = self.tracers {
            let _ = tracers.shutdown();
        }
    }
}

/// Exports the metrics now, to every pushing exporter (EMF, OTLP); blocks
/// until they are written. Lambda calls it after each invocation.
pub fn flush() {
    if let Some(meters) = METERS.get() {
        let _ = meters.force_flush();
    }
}

/// The metrics as Prometheus text (the exposition format, version 0.0.4),
/// or nothing before [`Telemetry::init`].
pub fn prometheus_text() -> String {
    let families = PROMETHEUS.get().map(Registry::gather).unwrap_or_default();
    TextEncoder::new().encode_to_string(&families).unwrap_or_default()
}

/// The media type of [`prometheus_text`].
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn resource() -> Resource {
    let builder = Resource::builder();
    match std::env::var_os("OTEL_SERVICE_NAME") {
        Some(_) => builder.build(),
        None => builder.with_service_name("streamhost").build(),
    }
}

/// Whether a collector is named for `signal` (`METRICS`, `TRACES`).
fn otlp_configured(signal: &str) -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}
