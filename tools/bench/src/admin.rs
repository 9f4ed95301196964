//! The admin benchmark.

/// Runs the admin benchmark with its command-line arguments (after the benchmark name).
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("the admin benchmark is not built yet".into())
}
