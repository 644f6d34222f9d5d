//! Trace replay.
use crate::cli::ReplayArgs;
pub fn run_file(_args: &ReplayArgs) -> anyhow::Result<String> {
    anyhow::bail!("replay is not built yet")
}
