//! Logging set-up for the binary.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::cli::{LogArgs, LogFormat};

/// Installs the global tracing subscriber (text or JSON to stderr).
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log)
        .map_err(|e| anyhow::anyhow!("--log {:?} is not a valid log filter: {e}", args.log))?;
    let registry = tracing_subscriber::registry().with(filter);
    match args.log_format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()?,
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()?,
    }
    Ok(())
}
