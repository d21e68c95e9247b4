//! tarsfork-shm: placeholder, built by the shared-memory table issue.
