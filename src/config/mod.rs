//! The Tars config format (TarsCpp `TC_Config`) and the endpoint strings inside it.
//!
//! A config file is a tree of blocks `<name>` … `</name>` holding `key=value` lines:
//!
//! ```text
//! <tars>
//!   <application>
//!     <server>
//!       app=TestApp
//!       allow
//!     </server>
//!   </application>
//! </tars>
//! ```
//!
//! The rules, checked against TarsCpp's `tc_config.cpp` and where we differ, why:
//! - Every line is trimmed of spaces, tabs and `\r` first, so indentation and CRLF files
//!   are fine. Blank lines and lines whose first character is `#` are skipped; a `#`
//!   later in a line is part of the value (`TC_Config` does the same).
//! - `<name>` opens a block, `</name>` closes it. Block names may contain dots
//!   (`TestApp.HelloServer.HttpObjAdapter`). Text after the closing `>` is an error here
//!   (`TC_Config` silently drops it, which hides a missing line break).
//! - A block opened twice in the same parent is one block: the second opening adds to
//!   the first (as `TC_Config::addSubDomain` does); it keeps the first one's position.
//! - `key=value` splits at the first `=` that is not escaped; the value may contain more
//!   `=`. Whitespace around key and value is trimmed. A line without `=` is a bare key
//!   (`allow`): present, with an empty value.
//! - Escapes in keys and values: `\=` → `=`, `\\` → `\`, and, as in `TC_Config`, `\n`,
//!   `\r`, `\t` → newline, carriage return, tab. Any other backslash (including a
//!   trailing one) is kept literally; `TC_Config` rejects such lines instead, but a
//!   literal backslash is what a person writing `C:\x` or a regex means.
//! - A key given twice in one block: the last one wins and takes the later position,
//!   as `TC_ConfigDomain::setParamValue` does.
//! - Limits against hostile input: a file of at most [`MAX_CONFIG_BYTES`] bytes and
//!   blocks nested at most [`MAX_DEPTH`] deep.

mod endpoint;
#[cfg(test)]
mod tests;
mod tree;

pub use endpoint::{Endpoint, EndpointError, ObjectRef, Transport, DEFAULT_ENDPOINT_TIMEOUT_MS};
pub use tree::{Block, ConfigTree, Entry, MAX_CONFIG_BYTES, MAX_DEPTH};

use std::fmt;
use std::path::PathBuf;

/// Where in a config file something is (or went wrong): file, and line/column if known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The config file's path as given (or a label such as `<embedded>`).
    pub file: PathBuf,
    /// 1-based line number; `None` when the problem concerns the whole file.
    pub line: Option<usize>,
    /// 1-based column (in characters) where it helps to point inside the line.
    pub column: Option<usize>,
}

impl Location {
    /// A location naming a line of `file`.
    pub fn line(file: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            file: file.into(),
            line: Some(line),
            column: None,
        }
    }

    /// A location naming the file as a whole.
    pub fn file(file: impl Into<PathBuf>) -> Self {
        Location {
            file: file.into(),
            line: None,
            column: None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// Everything that can be wrong with a config file. Each message names the file, the
/// line when there is one, what was expected, and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than any sane config; refused before reading it whole.
    #[error(
        "{}: the file is larger than {limit} bytes, far more than any Tars config; check that --config names the right file",
        path.display()
    )]
    TooLarge {
        /// The path given.
        path: PathBuf,
        /// The limit that was exceeded ([`MAX_CONFIG_BYTES`]).
        limit: u64,
    },
    /// The block/key structure is broken (unclosed or mismatched block, bad line...).
    /// `message` already says what was expected and how to fix it.
    #[error("{at}: {message}")]
    Syntax {
        /// Where.
        at: Box<Location>,
        /// What is wrong and the fix.
        message: String,
    },
    /// A key has a value of the wrong form, e.g. `worker_num=abc`.
    #[error("{at}: {key}={value}: {expected}, e.g. {key}={example}")]
    BadValue {
        /// Where the key is.
        at: Box<Location>,
        /// The key as written in the file.
        key: String,
        /// The value as written (after escapes).
        value: String,
        /// What was wrong / expected, e.g. `expected a whole number ≥ 1`.
        expected: String,
        /// A value that would be accepted.
        example: String,
    },
    /// A required key or block is missing.
    #[error("{at}: {what} is missing; {fix}")]
    Missing {
        /// The block that should hold it (its opening line), or the file.
        at: Box<Location>,
        /// What is missing, e.g. `app= in <tars><application><server>`.
        what: String,
        /// How to fix it.
        fix: String,
    },
    /// The values parse one by one but do not fit together (two adapters on one port...).
    #[error("{at}: {message}")]
    Invalid {
        /// Where the offending value is.
        at: Box<Location>,
        /// What is wrong and the fix.
        message: String,
    },
}

impl ConfigError {
    /// The location the error names, if any (for tests and for tools that jump to it).
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Read { .. } | ConfigError::TooLarge { .. } => None,
            ConfigError::Syntax { at, .. }
            | ConfigError::BadValue { at, .. }
            | ConfigError::Missing { at, .. }
            | ConfigError::Invalid { at, .. } => Some(&**at),
        }
    }

    /// The 1-based line the error names, if any.
    pub fn line(&self) -> Option<usize> {
        self.location().and_then(|at| at.line)
    }
}
