//! The command line of the `imagestream-operator` binary: flags are parsed here, the work is done by
//! the library modules.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use thiserror::Error;

use crate::api;

/// OpenShift image streams and image-change triggers for any Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "imagestream-operator", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every CustomResourceDefinition the operator serves, as YAML; with --output-dir, write
    /// one file per CRD and a kustomization.yaml into that directory instead.
    Crds {
        /// Directory to write `<plural>.<group>.yaml` files and `kustomization.yaml` into.
        #[arg(long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
    },
}

/// A command that failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// Writing a generated file failed.
    #[error("could not write {path}: {source}", path = path.display())]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Crds { output_dir: None } => {
            print!("{}", api::crds_yaml());
            Ok(())
        }
        Command::Crds {
            output_dir: Some(dir),
        } => write_crd_files(&dir),
    }
}

fn write_crd_files(dir: &std::path::Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::WriteFile {
        path: dir.to_owned(),
        source,
    })?;
    for file in api::crd_files() {
        let path = dir.join(&file.file_name);
        std::fs::write(&path, &file.yaml).map_err(|source| CliError::WriteFile { path, source })?;
    }
    Ok(())
}
