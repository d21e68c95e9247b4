//! (proxy: being written)
