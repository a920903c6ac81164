//! The filesystem plugin, loaded from its shared library into the global registry, against the shared
//! conformance suite, one test per case (with the memory backend as the second backend of case 19).

mod common;

use std::process::ExitCode;

use kombu_core::testing::Suite;

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

fn main() -> ExitCode {
    let from = common::load_global();
    assert!(from.ends_with(format!("{}kombu_fs_plugin{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)));
    let dir = common::fresh_dir("conformance");
    let code = Suite::new(format!("filesystem://{}", dir.display())).peer("memory://fs-plugin-peer").run_as_tests();
    std::fs::remove_dir_all(&dir).unwrap();
    code
}
