//! Where the built plugins are. `build.rs` compiles them for wasm32-wasip2.

/// The example plugins from `plugins/`, one `<name>.wasm` each.
pub const EXAMPLES_DIR: &str = env!("STREAMHOST_EXAMPLES_DIR");

/// The test fixtures from `tests/fixtures/`, one `<name>.wasm` each.
pub const FIXTURES_DIR: &str = env!("STREAMHOST_FIXTURES_DIR");
