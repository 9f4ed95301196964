//! `ocxlpmem-sim`: the simulated card as a vfio-user server.
fn main() {
    eprintln!("ocxlpmem-sim: the server is not built yet");
    std::process::exit(2);
}
