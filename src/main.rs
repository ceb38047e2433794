//! `vmsa`: the command line over vmsa-core and vmsa-kvm.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// Exact, checkable initial CPU state (VMSAs) for AMD SEV, SEV-ES and SEV-SNP guests.
#[derive(Debug, Parser)]
#[command(name = "vmsa", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show a VMSA page, an OVMF firmware image or an IGVM file, decoded (detected by content).
    Inspect(cmd::inspect::Args),
    /// Compute the per-vCPU launch VMSAs from OVMF or IGVM and write vmsa0.bin…
    Reset(cmd::reset::Args),
    /// Field-level diff of two VMSA pages; exit 0 when equal, 1 when they differ.
    Diff(cmd::diff::Args),
    /// Launch digest for SEV, SEV-ES or SNP (a drop-in for sev-snp-measure).
    Measure(cmd::measure::Args),
    /// Program real KVM vCPUs from the launch VMSAs and run them.
    Run(cmd::run::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Inspect(args)) => cmd::inspect::run(&args),
        Some(Command::Reset(args)) => cmd::reset::run(&args),
        Some(Command::Diff(args)) => cmd::diff::run(&args),
        Some(Command::Measure(args)) => cmd::measure::run(&args),
        Some(Command::Run(args)) => cmd::run::run(&args),
        None => cmd::run::main_job(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmsa: error: {e}");
            ExitCode::from(2)
        }
    }
}
