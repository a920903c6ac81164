//! Examples of kombu-rs; see `examples/`.
