//! Where the built plugins are. `build.rs` compiles them for wasm32-wasip2.

/// The example plugins from `plugins/`, one `<name>.wasm` each.
pub const EXAMPLES_DIR: &str = env!("STREAMHOST_EXAMPLES_DIR");

/// The test fixtures from `tests/fixtures/`, one `<name>.wasm` each.
pub const FIXTURES_DIR: &str = env!("STREAMHOST_FIXTURES_DIR");

/// The checkout's own `pipelines/` folder, whose manifests `EXAMPLES_DIR`
/// holds copies of as they were at the build: a host run from the checkout
/// serves these, so that an edit applies on the next request.
pub const PIPELINES_SOURCE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipelines");
