//! The `feedsieve` binary: everything is in the library; see `feedsieve::cli`.

fn main() -> std::process::ExitCode {
    feedsieve::cli::main()
}
