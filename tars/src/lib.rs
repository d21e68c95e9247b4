//! tarsfork-tars: the TARS binary protocol (codec, packets, framing), a blocking client
//! proxy runtime, and the tars2rs IDL compiler (parser and Rust generator).
//!
//! This crate knows nothing of processes: the server in `tarsfork` uses it, and so can
//! any program that speaks TARS.

pub mod codec;
pub mod frame;
pub mod framework;
pub mod gen;
pub mod idl;
pub mod packet;
pub mod proxy;
