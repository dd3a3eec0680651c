//! The `channelgate` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    channelgate::cli::run()
}
