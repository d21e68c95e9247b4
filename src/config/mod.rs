//! The Tars config format (being written).
