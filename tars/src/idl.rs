//! (idl: being written)
