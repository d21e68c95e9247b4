//! Interfaces: servant trait, dispatcher and client proxy.

use std::path::Path;

use super::{Gen, GenError};
use crate::idl::Interface;

impl Gen<'_> {
    pub(crate) fn interface(&mut self, _file: &Path, _i: &Interface) -> Result<(), GenError> {
        Ok(())
    }
}
