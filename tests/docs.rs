//! README.md stays true: its settings table is the one the settings code renders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

const BEGIN: &str = "<!-- settings-table:begin -->\n";
const END: &str = "<!-- settings-table:end -->";

#[test]
fn readme_settings_table_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).expect("README.md");
    let table = tarsfork::settings::docs_table_markdown();
    let (Some(b), Some(e)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md lacks the settings-table markers");
    };
    let current = &readme[b + BEGIN.len()..e];
    if current != table && std::env::var_os("UPDATE_README").is_some() {
        let updated = format!("{}{BEGIN}{table}{}", &readme[..b], &readme[e..]);
        std::fs::write(path, updated).expect("write README.md");
        return;
    }
    assert_eq!(
        current, table,
        "README's settings table is stale: run `UPDATE_README=1 cargo test --test docs`"
    );
}
