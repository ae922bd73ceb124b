#![no_main]
//! See `streamhost::fuzzing::TransformTarget`: random event batches through
//! every transform in `$STREAMHOST_FUZZ_PLUGINS`.

use std::sync::LazyLock;

use streamhost::fuzzing::TransformTarget;

static TARGET: LazyLock<TransformTarget> = LazyLock::new(|| {
    let plugins = std::env::var_os("STREAMHOST_FUZZ_PLUGINS").expect("STREAMHOST_FUZZ_PLUGINS names a plugin folder");
    TransformTarget::new(std::path::Path::new(&plugins))
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.run(data));
