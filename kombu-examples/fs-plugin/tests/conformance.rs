//! The filesystem plugin, loaded from its shared library into the global registry, against the shared
//! conformance suite (with the memory backend as the second backend of case 19).

mod common;

use kombu_core::testing::Suite;

#[test]
fn filesystem_plugin_passes_the_conformance_suite() {
    kombu_memory::link();
    let from = common::load_global();
    assert!(from.ends_with(format!("{}kombu_fs_plugin{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)));
    let dir = common::fresh_dir("conformance");
    Suite::new(format!("filesystem://{}", dir.display())).peer("memory://fs-plugin-peer").assert_passes();
    std::fs::remove_dir_all(&dir).unwrap();
}
