fn main() -> std::process::ExitCode {
    fitter::cli::main()
}
