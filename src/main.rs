//! `vmsa`: the command line over vmsa-core and vmsa-kvm.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// Exact, checkable initial CPU state (VMSAs) for AMD SEV, SEV-ES and SEV-SNP guests.
#[derive(Debug, Parser)]
#[command(name = "vmsa", version, about)]
pub(crate) struct Cli {
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
    Measure(Box<cmd::measure::Args>),
    /// Program real KVM vCPUs from the launch VMSAs and run them.
    Run(cmd::run::Args),
    /// An SEV-SNP attestation report (raw, hex or base64), decoded.
    Report(cmd::report::Args),
    /// Verify an SEV-SNP attestation report: signature, AMD's chain, TCB, chip, measurement,
    /// policy; one verdict, every check listed.
    Verify(cmd::verify::Args),
    /// Which launch produced this measurement: search vCPU counts, CPU types, VMM profiles and
    /// guest features for every configuration whose SNP digest equals a report's.
    Solve(cmd::solve::Args),
    /// An SNP ID block and its signatures for a launch digest (QEMU's id-block/id-auth, as
    /// sev-snp-measure's snp-create-id-block prints them); --verify checks a pair.
    IdBlock(cmd::id_block::Args),
    /// The VMSAs the host kernel measured (its sev_es_sync_vmsa debug dump in dmesg), against the
    /// prediction for the launch given after --: exit 0 when every page is equal, 1 otherwise.
    Capture(cmd::capture::Args),
    /// The VMM types and the versioned host profiles (Linux KVM, QEMU) --host-kernel and --qemu
    /// select, each row citing the commits that made it so.
    Profiles(cmd::profiles::Args),
    /// Shell completions or the man pages, generated from this command line's definition.
    Generate(cmd::generate::Args),
}

fn main() -> ExitCode {
    cmd::output::init();
    // `--from-qemu`: the QEMU command line's launch as the subcommand's own flags (other
    // arguments go to clap as they are, non-UTF-8 paths included).
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a.starts_with("--from-qemu") || a.starts_with("--from-libvirt"))
    }) {
        let words = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        match cmd::qemu::expand(words) {
            Ok(a) => argv = a.into_iter().map(Into::into).collect(),
            Err(e) => {
                crate::errln!("vmsa: error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" too; printing them never panics.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Some(Command::Inspect(args)) => cmd::inspect::run(&args),
        Some(Command::Reset(args)) => cmd::reset::run(&args),
        Some(Command::Diff(args)) => cmd::diff::run(&args),
        Some(Command::Measure(args)) => cmd::measure::run(&args),
        Some(Command::Run(args)) => cmd::run::run(&args),
        Some(Command::Report(args)) => cmd::report::run(&args),
        Some(Command::Verify(args)) => cmd::verify::run(&args),
        Some(Command::Solve(args)) => cmd::solve::run(&args),
        Some(Command::IdBlock(args)) => cmd::id_block::run(&args),
        Some(Command::Capture(args)) => cmd::capture::run(&args),
        Some(Command::Profiles(args)) => cmd::profiles::run(&args),
        Some(Command::Generate(args)) => cmd::generate::run::<Cli>(&args),
        None => cmd::run::main_job(),
    };
    match result {
        Ok(code) => match cmd::output::flush() {
            Ok(()) => code,
            // A closed pipe ends the program quietly, as SIGPIPE would have.
            Err(cmd::output::FlushError::BrokenPipe) => ExitCode::from(141),
            Err(cmd::output::FlushError::Other(m)) => {
                errln!("vmsa: error: {m}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            cmd::output::discard();
            if let Some(code) = cmd::output::interrupted(&e) {
                errln!("vmsa: {e}");
                return ExitCode::from(code);
            }
            errln!("vmsa: error: {e}");
            ExitCode::from(2)
        }
    }
}
