//! One module per subcommand, plus what they share: the arguments ([`args`]), the input files
//! ([`files`]) and the output ([`output`]). They parse arguments, read files and print; the
//! logic is in the core.
pub mod args;
pub mod capture;
pub mod diff;
pub mod files;
pub mod generate;
pub mod id_block;
pub mod igvm_sign;
pub mod inspect;
pub mod measure;
pub mod output;
pub mod profiles;
pub mod qemu;
pub mod report;
pub mod reset;
pub mod run;
pub mod solve;
pub mod verify;

/// An error for the user: one line, no panic.
pub type CmdResult = Result<std::process::ExitCode, String>;
