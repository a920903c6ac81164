//! The redis backend of kombu-rs (being built; see the project's issues). It registers no transport yet.
