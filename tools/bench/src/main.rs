//! `ocxlpmem-bench`: benchmarks measured as ratios against a reference in the same run.
fn main() {
    eprintln!("ocxlpmem-bench: no benchmark is built yet");
    std::process::exit(2);
}
