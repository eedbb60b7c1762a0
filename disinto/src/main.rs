//! `disinto`: the operator's command. All logic is in the library (`disinto::cli`).

fn main() -> std::process::ExitCode {
    // The public key of the release this binary ships in stays in it whatever reads it (the
    // linker would drop an unread constant): an auditor finds it with `strings`, and the
    // release's end-to-end test checks the key that signed the images is the one shipped.
    std::hint::black_box(disinto::RELEASE_PUBLIC_KEY);
    disinto::cli::main()
}
