//! A plugin's `tracing` events reach the program's subscriber: the global one, and a scoped one set on the
//! calling thread (the plugin has its own copy of `tracing`, so without the loader's relay they are dropped).

mod common;

use std::sync::{Arc, Mutex};

use kombu_core::Registry;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records each event as `target: message host=...`.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Recorder {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0.lock().unwrap().push(format!("{}: {}", event.metadata().target(), fields.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn a_plugins_logs_reach_the_programs_global_and_scoped_subscribers() {
    let global = Recorder::default();
    tracing::subscriber::set_global_default(global.clone()).unwrap();
    let registry = Registry::empty();
    registry.load_plugin(common::example_library("panicking_plugin")).unwrap();
    let transport = registry.get("panicky").unwrap();

    transport.connect(&"panicky://first/".parse().unwrap()).unwrap();
    let seen = global.lines();
    assert!(seen.iter().any(|l| l == "panicking_plugin: panicky connects host=\"first\""), "{seen:#?}");

    // A subscriber the program sets after loading, for one thread, gets the plugin's events made there.
    let scoped = Recorder::default();
    tracing::subscriber::with_default(scoped.clone(), || {
        transport.connect(&"panicky://second/".parse().unwrap()).unwrap();
    });
    let in_scope = scoped.lines();
    assert!(in_scope.iter().any(|l| l.ends_with("host=\"second\"")), "{in_scope:#?}");
    assert!(
        !global.lines().iter().any(|l| l.contains("second")),
        "the scoped event also went to the global subscriber"
    );
}
