//! `ocxlpmem-bench`: benchmarks measured as ratios against a reference in the same run.
//!
//! `ocxlpmem-bench admin [...]` measures admin round trips, `ocxlpmem-bench pmem [...]` the
//! persistence primitives; each prints a JSON report on stdout (`--help` on each for options).

mod admin;
mod pmem;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let rest = args.get(2..).unwrap_or_default();
    let result = match args.get(1).map(String::as_str) {
        Some("admin") => admin::run(rest),
        Some("pmem") => pmem::run(rest),
        _ => {
            eprintln!("usage: ocxlpmem-bench <admin|pmem> [options]   (options: <bench> --help)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ocxlpmem-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
