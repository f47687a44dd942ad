//! The `labcheck` binary: everything it does is in [`labcheck::cli`].

fn main() -> std::process::ExitCode {
    labcheck::cli::main()
}
