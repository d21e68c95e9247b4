//! (packet: being written)
