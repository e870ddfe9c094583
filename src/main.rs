//! The `tessera` command: lazy chunked arrays from the shell.

mod cli;

fn main() {
    // Like other command-line tools, end quietly when the reader of our output goes away
    // (`tessera info x.h5:/x | head -3`) instead of panicking on the failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
