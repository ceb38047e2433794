//! One module per subcommand. They parse arguments, read files and print; the logic is in the core.
pub mod diff;
pub mod inspect;
pub mod inspect_igvm;
pub mod inspect_ovmf;
pub mod measure;
pub mod reset;
pub mod run;

/// An error for the user: one line, no panic.
pub type CmdResult = Result<std::process::ExitCode, String>;

/// Reads a whole file, with its path in the error.
pub fn read_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
