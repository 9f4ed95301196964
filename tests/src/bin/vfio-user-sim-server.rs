//! The simulator's command line (`ocxlpmem-sim`), built inside the tests package so that
//! cargo builds it for the integration tests and sets `CARGO_BIN_EXE_vfio-user-sim-server`
//! (cargo does not build the binaries of dependencies). Same code as `ocxlpmem-sim`.
fn main() -> std::process::ExitCode {
    ocxlpmem_sim::server::cli::main()
}
