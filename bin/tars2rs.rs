//! `tars2rs <file.tars>... -o <out dir>`: generates one Rust file per IDL module.
//!
//! Exits 0 after printing the files written, 1 with `file:line:column: message` on a
//! bad IDL (or the failing path on an I/O error), 2 on bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Command line of tars2rs.
#[derive(Debug, Parser)]
#[command(
    name = "tars2rs",
    about = "Generate Rust code (structs, enums, consts, servant traits, dispatchers and client proxies) from .tars IDL files"
)]
struct Args {
    /// The .tars files; their `#include`s are read too, but only the modules these
    /// files declare are generated.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The directory to write `<module>.rs` files into (created if missing).
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
    /// The path generated code uses for the tarsfork-tars crate (`crate` when the code
    /// is compiled inside tarsfork-tars itself).
    #[arg(long = "runtime-path", default_value = "::tarsfork_tars")]
    runtime_path: String,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let opts = tarsfork_tars::gen::GenOptions {
        runtime: args.runtime_path,
    };
    match tarsfork_tars::gen::generate_files_with(&args.files, &args.out, &opts) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
