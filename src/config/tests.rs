//! Unit tests of the config tree and endpoint parsers.
