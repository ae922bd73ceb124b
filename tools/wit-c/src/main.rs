//! The two steps of building a C plugin that C toolchains lack:
//!
//! - `wit-c bindings <wit dir> <world> <out dir>`: C bindings for a world of
//!   the WIT (`<world>.h`, `<world>.c`, `<world>_component_type.o`), made by
//!   the `wit-bindgen-c` library, as `wit-bindgen c` makes them.
//! - `wit-c component <core.wasm> <out.wasm>`: a core module built by clang
//!   for wasm32-wasi (WASI preview 1), with the component type the bindings
//!   embedded, made into a component with the preview 1 reactor adapter, as
//!   `wasm-tools component new --adapt` does.
//!
//! Both come from crates.io with the rest of the build, so a C plugin needs
//! only Debian's clang, lld and wasi-libc besides.

use std::path::Path;

use anyhow::{Context, bail};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_c::Opts;
use wit_bindgen_core::Files;
use wit_bindgen_core::wit_parser::Resolve;
use wit_component::ComponentEncoder;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["bindings", wit, world, out] => bindings(Path::new(wit), world, Path::new(out)),
        ["component", core, out] => component(Path::new(core), Path::new(out)),
        _ => bail!("usage: wit-c bindings <wit dir> <world> <out dir> | wit-c component <core.wasm> <out.wasm>"),
    }
}

fn bindings(wit: &Path, world: &str, out: &Path) -> anyhow::Result<()> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_path(wit).with_context(|| format!("reading the WIT in {}", wit.display()))?;
    let world = resolve.select_world(&[package], Some(world))?;
    let mut files = Files::default();
    Opts::default().build().generate(&mut resolve, world, &mut files)?;
    std::fs::create_dir_all(out)?;
    for (name, contents) in files.iter() {
        std::fs::write(out.join(name), contents).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

fn component(core: &Path, out: &Path) -> anyhow::Result<()> {
    let module = std::fs::read(core).with_context(|| format!("reading {}", core.display()))?;
    let component = ComponentEncoder::default()
        .module(&module)?
        .adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)?
        .validate(true)
        .encode()?;
    std::fs::write(out, component).with_context(|| format!("writing {}", out.display()))
}
