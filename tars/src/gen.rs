//! (gen: being written)
