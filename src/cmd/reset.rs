//! `vmsa reset` (in progress).
use super::CmdResult;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: &Args) -> CmdResult {
    Err("`reset` is not implemented yet".into())
}
