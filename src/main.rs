//! The `tessera` command: lazy chunked arrays from the shell.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
