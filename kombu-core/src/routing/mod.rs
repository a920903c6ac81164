//! Routing for virtual exchanges (memory, Redis): which bindings take a message. Pure functions, shared
//! by every backend that routes in-process, with AMQP 0-9-1's rules.

mod headers;
mod topic;

pub use headers::headers_match;
pub use topic::topic_matches;

use crate::entity::ExchangeKind;
use crate::fields::FieldTable;

/// Whether a binding of `kind` with `binding_key` and `binding_args` takes a message published with
/// `routing_key` and `headers`.
///
/// ```
/// use kombu_core::routing::binding_matches;
/// use kombu_core::{ExchangeKind, FieldTable};
/// let none = FieldTable::new();
/// assert!(binding_matches(ExchangeKind::Topic, "a.#", &none, "a", &none));
/// assert!(!binding_matches(ExchangeKind::Direct, "a", &none, "b", &none));
/// assert!(binding_matches(ExchangeKind::Fanout, "", &none, "anything", &none));
/// ```
pub fn binding_matches(
    kind: ExchangeKind,
    binding_key: &str,
    binding_args: &FieldTable,
    routing_key: &str,
    headers: &FieldTable,
) -> bool {
    match kind {
        ExchangeKind::Direct => binding_key == routing_key,
        ExchangeKind::Topic => topic_matches(binding_key, routing_key),
        ExchangeKind::Fanout => true,
        ExchangeKind::Headers => headers_match(binding_args, headers),
    }
}
