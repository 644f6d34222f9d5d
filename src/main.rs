//! `burst-scaler`: parse arguments, set up logging, call into the library.
#![forbid(unsafe_code)]

use std::io::Write;

use burst_scaler::cli::{Cli, Command};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            let yaml = burst_scaler::crdgen::crds_yaml()?;
            std::io::stdout().write_all(yaml.as_bytes())?;
            Ok(())
        }
        Command::Controller(args) => {
            burst_scaler::telemetry::init(&cli.log)?;
            burst_scaler::controller::run(args).await
        }
        Command::Agent(args) => {
            burst_scaler::telemetry::init(&cli.log)?;
            burst_scaler::agent::run(args).await
        }
        Command::Explain(args) => {
            let out = burst_scaler::explain::fetch::run(&args).await?;
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
        Command::Replay(args) => {
            let out = burst_scaler::replay::run_file(&args)?;
            std::io::stdout().write_all(out.as_bytes())?;
            Ok(())
        }
    }
}
