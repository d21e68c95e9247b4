//! The Tars platform layer: what a server hosted on Tars does for the platform.
//!
//! | module | what |
//! |---|---|
//! | `admin` | AdminF on the `local` endpoint, served by the master |
//! | `heartbeat` | keepAlive to tarsnode, sent by task worker 0 |
//! | [`stats`], `callstats` | call statistics recorded by every process into shared memory |
//! | [`props`], [`procfs`] | properties: the application's and the /proc readings |
//! | [`aggregate`] | the shared-memory store behind statistics and properties |
//! | `reporter` | takes statistics and properties and reports them to tarsstat / tarsproperty |
//! | `locator` | resolves object names through the registry |
//! | `config_pull` | pulls config files from tarsconfig |
//!
//! Everything here is recorded by many processes into shared memory and taken by one
//! (task worker 0), which reports it over the network.

pub(crate) mod admin;
pub mod aggregate;
pub(crate) mod callstats;
pub(crate) mod config_pull;
pub(crate) mod heartbeat;
pub(crate) mod locator;
pub mod procfs;
pub mod props;
pub(crate) mod reporter;
pub mod stats;

/// The adapter name tarsnode keeps alive for the admin endpoint.
pub(crate) const ADMIN_ADAPTER: &str = "AdminAdapter";
