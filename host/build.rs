//! Rebuilds the host when the plugin templates or the WIT change:
//! `include_dir!` embeds them (`authoring::scaffold`), and cargo does not
//! know a macro read them.

fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=../wit");
}
