//! The `herald` binary: everything is in the library; see `herald::cli`.

fn main() {
    std::process::exit(herald::cli::main(std::env::args_os()));
}
