//! (frame: being written)
