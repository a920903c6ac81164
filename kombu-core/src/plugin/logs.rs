//! A plugin's logs reach the program's `tracing` subscriber.
//!
//! A plugin is a separate library with its own copy of `tracing` and so its own global dispatcher, which no
//! one sets: without this module everything a plugin logs is dropped. The loader hands the plugin a
//! [`HostRelay`] (made here, in the program, so its code is the program's) and the plugin's registration
//! installs it as the plugin's global default. Each event or span the plugin makes then goes to whatever
//! dispatcher is current *in the program* at that moment, on that thread: the global subscriber, or a
//! scoped one (`tracing::subscriber::with_default`), including one set up after the plugin was loaded.

use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// Forwards every call to the program's current dispatcher. Interest is re-asked at every callsite use
/// ([`Interest::sometimes`]) because the program's dispatcher may change after the plugin's callsites
/// were registered. `Span::current()` inside the plugin knows no span (the default `current_span`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HostRelay;

impl HostRelay {
    /// The relay as a dispatcher, for [`PluginRegistrar`](super::PluginRegistrar) to carry to the plugin.
    pub(crate) fn dispatch() -> Dispatch {
        Dispatch::new(HostRelay)
    }
}

fn current<T>(f: impl FnMut(&Dispatch) -> T) -> T {
    tracing::dispatcher::get_default(f)
}

impl Subscriber for HostRelay {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::sometimes()
    }
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        current(|d| d.enabled(metadata))
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        current(|d| d.new_span(span))
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        current(|d| d.record(span, values))
    }
    fn record_follows_from(&self, span: &Id, follows: &Id) {
        current(|d| d.record_follows_from(span, follows))
    }
    /// `Dispatch::event` asks the program's subscriber's `event_enabled` itself.
    fn event(&self, event: &Event<'_>) {
        current(|d| d.event(event))
    }
    fn enter(&self, span: &Id) {
        current(|d| d.enter(span))
    }
    fn exit(&self, span: &Id) {
        current(|d| d.exit(span))
    }
    fn clone_span(&self, id: &Id) -> Id {
        current(|d| d.clone_span(id))
    }
    fn try_close(&self, id: Id) -> bool {
        current(|d| d.try_close(id.clone()))
    }
}

/// Called inside the plugin by its registration: makes the relay the plugin's global dispatcher. A plugin
/// that already set a global dispatcher of its own keeps it (logged, through that dispatcher).
pub(crate) fn install_in_plugin(relay: Option<Dispatch>) {
    if let Some(relay) = relay {
        if tracing::dispatcher::set_global_default(relay).is_err() {
            tracing::debug!("this plugin set its own tracing dispatcher; its logs do not reach the program's");
            return;
        }
        // The relay was made (and registered) in the program, so the plugin's own callsite registry has
        // not seen it: without this its maximum level stays OFF and every event is filtered out.
        tracing::callsite::rebuild_interest_cache();
    }
}
