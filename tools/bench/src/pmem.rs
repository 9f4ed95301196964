//! The pmem benchmark.

/// Runs the pmem benchmark with its command-line arguments (after the benchmark name).
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the pmem benchmark is not built yet".into())
}
