//! A plugin with two transports, `clash-new` and `memory`: loaded where `memory` is registered, the
//! loader must refuse it whole, leaving `clash-new` unregistered too. Built as a `cdylib` for the loader's
//! tests.

#[path = "common/named.rs"]
mod named;
use named::Named;

kombu_core::export_plugin!(Named("clash-new"), Named("memory"));
