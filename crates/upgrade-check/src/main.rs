fn main() -> std::process::ExitCode {
    upgrade_check::main_with(std::env::args_os())
}
