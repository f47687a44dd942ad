fn main() -> std::process::ExitCode {
    labcheck::cli::main()
}
