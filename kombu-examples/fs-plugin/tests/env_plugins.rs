//! `KOMBU_PLUGINS`: the plugins it lists load when the global registry is first used, and one that fails
//! is logged and named by the unknown-transport error. Alone in its test binary, because it sets the
//! variable before the global registry exists.

mod common;

use kombu_core::registry::Origin;
use kombu_core::{Connection, ErrorKind, Message, Queue, Registry};

#[test]
fn plugins_listed_in_kombu_plugins_load_on_first_use() {
    let plugin = common::fs_plugin();
    let missing = common::fresh_dir("env").join("libgone.so");
    let list = std::env::join_paths([&plugin, &missing]).unwrap();
    std::env::set_var("KOMBU_PLUGINS", &list);

    let registry = Registry::global();
    assert!(matches!(registry.origin("filesystem"), Some(Origin::Plugin(_))), "{registry:?}");
    let err = registry.get("filesystm").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownTransport);
    let text = err.to_string();
    assert!(text.contains("did you mean 'filesystem'?"), "{text}");
    assert!(text.contains(&format!("KOMBU_PLUGINS: cannot load plugin {}: no such file", missing.display())), "{text}");

    let dir = common::fresh_dir("env-queue");
    let conn = Connection::open(&format!("filesystem://{}", dir.display())).unwrap();
    let ch = conn.channel().unwrap();
    ch.declare(&Queue::new("env")).unwrap();
    ch.publish(Message::new("hello"), "", "env", &Default::default()).unwrap();
    let got = ch.get("env", false).unwrap().expect("a message");
    assert_eq!(&got.body[..], b"hello");
    got.ack().unwrap();
    conn.close().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
