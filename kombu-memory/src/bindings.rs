//! An exchange's bindings, and the queues a message published to it goes to. A direct exchange keeps an
//! index of its queues by binding key, made on the first publish after a change: a publish looks its key
//! up instead of matching every binding (with 1,000 queues bound, a publish cost a thousand compares).

use kombu_core::routing::binding_matches;
use kombu_core::{ExchangeKind, FieldTable};
use rustc_hash::FxHashMap;

struct Bind {
    queue: String,
    key: String,
    args: FieldTable,
}

#[derive(Default)]
pub(crate) struct Bindings {
    list: Vec<Bind>,
    /// A direct exchange's queues per binding key, each once, in binding order; `None` after a change.
    by_key: Option<FxHashMap<String, Vec<String>>>,
}

impl Bindings {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Binds `queue` with `key` and `args` (once: the same binding again changes nothing).
    pub(crate) fn add(&mut self, queue: &str, key: &str, args: &FieldTable) {
        if !self.list.iter().any(|b| b.queue == queue && b.key == key && &b.args == args) {
            self.list.push(Bind { queue: queue.to_owned(), key: key.to_owned(), args: args.clone() });
            self.by_key = None;
        }
    }

    /// Removes the binding of `queue` with `key` and `args`.
    pub(crate) fn remove(&mut self, queue: &str, key: &str, args: &FieldTable) {
        self.list.retain(|b| !(b.queue == queue && b.key == key && &b.args == args));
        self.by_key = None;
    }

    /// Removes every binding of `queue` (it is gone).
    pub(crate) fn remove_queue(&mut self, queue: &str) {
        self.list.retain(|b| b.queue != queue);
        self.by_key = None;
    }

    /// The queues a message with `routing_key` and `headers` goes to, each once, in binding order.
    pub(crate) fn targets(&mut self, kind: ExchangeKind, routing_key: &str, headers: &FieldTable) -> Vec<String> {
        if kind == ExchangeKind::Direct {
            let list = &self.list;
            let index = self.by_key.get_or_insert_with(|| {
                let mut index: FxHashMap<String, Vec<String>> = FxHashMap::default();
                for b in list {
                    let queues = index.entry(b.key.clone()).or_default();
                    if !queues.contains(&b.queue) {
                        queues.push(b.queue.clone());
                    }
                }
                index
            });
            return index.get(routing_key).cloned().unwrap_or_default();
        }
        let mut targets: Vec<&str> = Vec::new();
        for b in &self.list {
            if !targets.contains(&b.queue.as_str()) && binding_matches(kind, &b.key, &b.args, routing_key, headers) {
                targets.push(&b.queue);
            }
        }
        targets.into_iter().map(str::to_owned).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> FieldTable {
        FieldTable::new()
    }

    #[test]
    fn a_direct_exchange_routes_by_its_index_and_sees_every_change() {
        let mut b = Bindings::default();
        b.add("q1", "k", &none());
        b.add("q2", "k", &none());
        b.add("q1", "k", &none());
        b.add("q3", "other", &none());
        let direct = |b: &mut Bindings, key: &str| b.targets(ExchangeKind::Direct, key, &none());
        assert_eq!(direct(&mut b, "k"), ["q1", "q2"], "each queue once, in binding order");
        assert_eq!(direct(&mut b, "other"), ["q3"]);
        assert!(direct(&mut b, "nobody").is_empty());
        b.remove("q1", "k", &none());
        assert_eq!(direct(&mut b, "k"), ["q2"], "an unbind is seen");
        b.add("q4", "k", &none());
        assert_eq!(direct(&mut b, "k"), ["q2", "q4"], "a bind is seen");
        b.remove_queue("q2");
        assert_eq!(direct(&mut b, "k"), ["q4"], "a deleted queue is seen");
        // The same bindings matched one by one give the same queues.
        let mut headers = FieldTable::new();
        headers.insert("x", "y");
        assert_eq!(
            b.targets(ExchangeKind::Topic, "k", &headers),
            direct(&mut b, "k"),
            "a key without wildcards matches as a direct one"
        );
        assert_eq!(b.targets(ExchangeKind::Fanout, "any", &none()), ["q3", "q4"]);
    }
}
