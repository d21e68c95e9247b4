//! What a server hosted on the Tars platform keeps for the platform: call statistics
//! (for tarsstat), properties (for tarsproperty) and the /proc readings behind the
//! built-in properties. Everything here is recorded by many processes into shared
//! memory and taken by one (task worker 0), which reports it over the network.

pub mod aggregate;
pub mod procfs;
pub mod props;
pub mod stats;
