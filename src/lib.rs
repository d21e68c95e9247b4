//! tarsfork: a multi-process prefork server in the swoole style for the Tars platform.

pub mod config;
pub mod http;
pub mod settings;
