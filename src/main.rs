//! The `imagestream-operator` binary: parses the command line and hands it to the library.

use clap::Parser;
use imagestream_operator::cli::{Cli, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // kube and reqwest would each pick a different default provider; one explicit choice avoids a
    // panic at the first TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("imagestream-operator: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
