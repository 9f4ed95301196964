//! `ocxlpmem-ctl`: the diagnostic and management tool.
fn main() {
    eprintln!("ocxlpmem-ctl: no subcommand is built yet");
    std::process::exit(2);
}
