//! The loader's refusals, one test each, with real files: each is a plugin error naming its reason, and
//! leaves the registry as it was.

mod common;

use std::path::Path;
use std::sync::Arc;

use kombu_core::registry::Origin;
use kombu_core::{ErrorKind, Registry};

kombu_core::register_transport!(kombu_memory::DESCRIPTOR);

/// Loads `path` into `registry`, expecting a plugin error that mentions `reason` and no change to the
/// registry's aliases.
fn refused(registry: &Registry, path: &Path, reason: &str) -> String {
    let before = registry.aliases();
    let err = registry.load_plugin(path).expect_err("the loader refuses it");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    let text = err.to_string();
    assert!(text.contains(reason), "expected '{reason}' in: {text}");
    assert!(text.contains(&path.display().to_string()), "the error names the file: {text}");
    assert_eq!(registry.aliases(), before, "a refused plugin changed the registry");
    text
}

#[test]
fn a_path_that_does_not_exist() {
    let path = common::fresh_dir("missing").join("libnothing.so");
    refused(&Registry::empty(), &path, "no such file");
}

#[test]
fn a_text_file() {
    let dir = common::fresh_dir("text");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("libnot-a-plugin.so");
    std::fs::write(&path, "This is a text file, not a shared library.\n").unwrap();
    refused(&Registry::empty(), &path, "not a shared library");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_library_without_the_entry_symbol() {
    refused(&Registry::empty(), &common::example_library("no_entry_plugin"), "no `kombu_plugin_declaration` symbol");
}

#[test]
fn a_plugin_built_for_another_abi_version() {
    let abi = kombu_core::plugin::ABI_VERSION;
    let built_for = format!("plugin ABI {}", abi + 1000);
    let text = refused(&Registry::empty(), &common::example_library("bad_abi_plugin"), &built_for);
    assert!(text.contains(&format!("this program uses plugin ABI {abi}")), "{text}");
}

#[test]
fn an_alias_of_a_built_in_transport() {
    let global = Registry::global();
    assert_eq!(global.origin("memory"), Some(Origin::BuiltIn));
    refused(global, &common::example_library("clashing_plugin"), "'memory' is already registered (built in)");
    assert!(global.get("clash-new").is_err(), "the plugin's other transport was registered");
}

#[test]
fn an_alias_registered_at_run_time() {
    let registry = Registry::empty();
    registry.register(Arc::new(kombu_memory::MemoryTransport)).unwrap();
    refused(
        &registry,
        &common::example_library("clashing_plugin"),
        "'memory' is already registered (registered at run time)",
    );
}

#[test]
fn an_alias_registered_by_another_plugin() {
    let registry = Registry::empty();
    let path = common::fs_plugin();
    assert_eq!(registry.load_plugin(&path).unwrap(), ["filesystem", "fs"]);
    let canonical = std::fs::canonicalize(&path).unwrap();
    let text = refused(&registry, &path, "'filesystem' is already registered");
    assert!(text.contains(&format!("(plugin {})", canonical.display())), "{text}");
    assert_eq!(registry.origin("fs"), Some(Origin::Plugin(canonical)));
}

#[test]
fn a_loaded_plugin_works_through_its_registry() {
    let registry = Registry::empty();
    registry.load_plugin(common::fs_plugin()).unwrap();
    let dir = common::fresh_dir("smoke");
    let url = format!("fs://{}", dir.display()).parse().unwrap();
    let conn = registry.get("fs").unwrap().connect(&url).unwrap();
    let ch = conn.channel().unwrap();
    ch.declare(&kombu_core::Queue::new("smoke")).unwrap();
    let opts = kombu_core::PublishOptions::default();
    ch.publish(kombu_core::Message::new("through the plugin"), "", "smoke", &opts).unwrap();
    let got = ch.get("smoke", false).unwrap().expect("a message");
    assert_eq!(&got.body[..], b"through the plugin");
    got.ack().unwrap();
    assert!(ch.get("smoke", false).unwrap().is_none());
    conn.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_panic_in_a_plugin_call_is_an_error_and_the_program_goes_on() {
    let registry = Registry::empty();
    assert_eq!(registry.load_plugin(common::example_library("panicking_plugin")).unwrap(), ["panicky"]);
    let transport = registry.get("panicky").unwrap();

    let err = transport.connect(&"panicky://panic/".parse().unwrap()).expect_err("connect panicked");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(err.to_string().contains("Transport::connect panicked: connect was told to panic"), "{err}");

    let conn = transport.connect(&"panicky://localhost/".parse().unwrap()).unwrap();
    let ch = conn.channel().unwrap();
    let opts = kombu_core::PublishOptions::default();
    let err = ch.publish(kombu_core::Message::new("lost"), "", "panic", &opts).expect_err("publish panicked");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(err.to_string().contains("Channel::publish panicked: publish was told to panic"), "{err}");

    // The same channel still works afterwards.
    ch.publish(kombu_core::Message::new("kept"), "", "q", &opts).unwrap();
    let err = ch.get("panic", false).expect_err("get panicked");
    assert!(err.to_string().contains("Channel::get panicked"), "{err}");
    let got = ch.get("q", false).unwrap().expect("the message published after the panic");
    assert_eq!(&got.body[..], b"kept");
    got.ack().unwrap();

    // Settling a message goes through the guard too: a panic in ack is an error, and the message stays
    // unsettled.
    ch.publish(kombu_core::Message::new("bad ack").header("panic-on-ack", true), "", "q", &opts).unwrap();
    let got = ch.get("q", false).unwrap().expect("a message");
    let err = got.ack().expect_err("ack panicked");
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(err.to_string().contains("Channel::ack panicked: ack of 2 was told to panic"), "{err}");
    assert!(!got.acknowledged());
    got.reject(false).unwrap();
    assert!(ch.is_open() && conn.is_open());
    conn.close().unwrap();
}

#[test]
fn a_plugin_built_against_another_plugin_api() {
    let ours = format!("{:016x}", kombu_core::plugin::API_FINGERPRINT);
    let theirs = format!("{:016x}", kombu_core::plugin::API_FINGERPRINT ^ 0x5a5a);
    let text = refused(&Registry::empty(), &common::example_library("other_api_plugin"), "plugin API");
    assert!(text.contains(&format!("built against kombu-core plugin API {theirs}")), "{text}");
    assert!(text.contains(&format!("this program uses plugin API {ours}")), "{text}");
}
