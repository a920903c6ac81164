//! placeholder
pub use kombu_core::*;
