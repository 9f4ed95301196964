//! `ocxlpmem-sim`: the simulated card as a vfio-user server
//! (`ocxlpmem-sim serve --socket PATH`; see `ocxlpmem_sim::server`).
fn main() -> std::process::ExitCode {
    ocxlpmem_sim::server::cli::main()
}
