//! `vmsa run` (in progress).
use super::CmdResult;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs the command.
pub fn run(_args: &Args) -> CmdResult {
    Err("`run` is not implemented yet".into())
}

/// The main job (`cargo run --release` with no arguments).
pub fn main_job() -> CmdResult {
    super::inspect::run_builtin()
}
