//! `streamhost new ROLE NAME --lang LANG`: writes a self-contained plugin
//! folder: its source, its manifest (Cargo.toml, package.json), a README, a
//! `build.sh` that builds the component, the WIT it is built against, and a
//! golden test (`fixtures/`) that passes straight away.
//!
//! The templates are files under `host/templates/`, embedded in the binary
//! (`include_dir`): `<lang>/` holds what every role shares in that language,
//! `<lang>/<role>/` the role's source, `fixtures/<role>/` the golden test,
//! which every language's template passes alike. `{{name}}`, `{{crate}}`
//! (the name with `_` for `-`), `{{role}}` (the world), `{{module}}` (the
//! interface it exports) and `{{lang}}` are filled in.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::ValueEnum;
use include_dir::{Dir, DirEntry, include_dir};

use crate::plugin_store::PluginName;
use crate::registry::PluginRole;

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/templates");
static WIT: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../wit");

/// A language a plugin can be written in, with its toolchain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust and wit-bindgen (`rustup target add wasm32-wasip2`).
    Rust,
    /// Python and componentize-py (`pip install componentize-py`).
    Python,
    /// JavaScript and componentize-js (from npm, by `build.sh`).
    Js,
    /// C, clang for wasm32-wasi and wit-bindgen's C bindings (`wit-c`).
    C,
}

impl fmt::Display for Lang {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.to_possible_value().expect("no skipped variants").get_name())
    }
}

/// Writes the plugin folder `dir/name` and returns its path. Refuses a
/// folder that exists, so nothing is overwritten.
pub fn new(role: PluginRole, name: &PluginName, lang: Lang, dir: &Path) -> anyhow::Result<PathBuf> {
    let root = dir.join(name.as_str());
    anyhow::ensure!(
        !root.exists() && root.symlink_metadata().is_err(),
        "{} exists; choose another name or folder",
        root.display()
    );
    let fill = |text: &str| {
        text.replace("{{name}}", name.as_str())
            .replace("{{crate}}", &name.as_str().replace('-', "_"))
            .replace("{{role}}", &role.to_string())
            .replace("{{module}}", role.interface())
            .replace("{{role_c}}", &role.to_string().replace('-', "_"))
            .replace("{{wit_c_source}}", concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/wit-c"))
            .replace("{{lang}}", &lang.to_string())
    };
    let language = TEMPLATES.get_dir(lang.to_string()).context("the language's templates")?;
    let role_files = language.get_dir(format!("{lang}/{role}")).context("the role's template")?;
    let fixtures = TEMPLATES.get_dir(format!("fixtures/{role}")).context("the role's golden test")?;
    let mut written = Vec::new();
    // What the language's roles share: its files, not its roles' folders.
    for file in language.files() {
        // Stored without its dot, so that git and include_dir keep it.
        let path = relative(file.path(), language.path());
        let path = if path == Path::new("gitignore") { Path::new(".gitignore") } else { path };
        written.push((root.join(path), fill(text(file)?)));
    }
    for file in all_files(role_files) {
        written.push((root.join(relative(file.path(), role_files.path())), fill(text(file)?)));
    }
    for file in fixtures.files() {
        written.push((root.join("fixtures").join(relative(file.path(), fixtures.path())), fill(text(file)?)));
    }
    for file in WIT.files().filter(|file| file.path().extension().is_some_and(|extension| extension == "wit")) {
        written.push((root.join("wit").join(file.path()), text(file)?.to_string()));
    }
    let readme = TEMPLATES.get_file("README.md").context("the README template")?;
    written.push((root.join("README.md"), fill(text(readme)?)));
    for (path, contents) in written {
        let folder = path.parent().expect("a file in the folder");
        std::fs::create_dir_all(folder).with_context(|| format!("making {}", folder.display()))?;
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        if path.file_name().is_some_and(|name| name == "build.sh") {
            make_executable(&path)?;
        }
    }
    Ok(root)
}

fn all_files<'a>(dir: &'a Dir<'a>) -> Vec<&'a include_dir::File<'a>> {
    let mut files = Vec::new();
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(sub) => files.extend(all_files(sub)),
            DirEntry::File(file) => files.push(file),
        }
    }
    files
}

fn relative<'a>(path: &'a Path, base: &Path) -> &'a Path {
    path.strip_prefix(base).unwrap_or(path)
}

fn text<'a>(file: &'a include_dir::File<'a>) -> anyhow::Result<&'a str> {
    file.contents_utf8().with_context(|| format!("template {} is not text", file.path().display()))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language has every role, and every role its golden test.
    #[test]
    fn every_language_has_every_role_and_every_role_a_golden_test() {
        for lang in Lang::value_variants() {
            for role in PluginRole::value_variants() {
                let folder = tempfile::tempdir().unwrap();
                let name: PluginName = "my-plugin".parse().unwrap();
                let root = new(*role, &name, *lang, folder.path()).unwrap();
                for needed in
                    ["build.sh", "README.md", "fixtures/hello.json", "fixtures/hello.expected", "wit/plugin.wit"]
                {
                    assert!(root.join(needed).is_file(), "{lang} {role}: {needed}");
                }
                let everything = std::fs::read_dir(&root).unwrap().count();
                assert!(everything >= 5, "{lang} {role}");
                assert!(new(*role, &name, *lang, folder.path()).is_err(), "an existing folder is not overwritten");
            }
        }
    }
}
