//! `disinto`: the operator's command. All logic is in the library (`disinto::cli`).

fn main() -> std::process::ExitCode {
    disinto::cli::main()
}
