//! The `imagestream-operator` binary: parses the command line and hands it to the library.

#![forbid(unsafe_code)]

use clap::{CommandFactory, FromArgMatches, Parser};
use imagestream_operator::cli::{Cli, PLUGIN_NAME, run};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // kube and reqwest would each pick a different default provider; one explicit choice avoids a
    // panic at the first TLS connection.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Installed or linked as `kubectl-imagestream`, the binary is a kubectl plugin:
    // `kubectl imagestream import-image …`; its help says so.
    let as_plugin = std::env::args_os()
        .next()
        .and_then(|arg| {
            std::path::Path::new(&arg)
                .file_name()
                .map(|name| name == PLUGIN_NAME)
        })
        .unwrap_or(false);
    let cli = if as_plugin {
        let matches = Cli::command().bin_name("kubectl imagestream").get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit())
    } else {
        Cli::parse()
    };
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("imagestream-operator: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}
