//! `vmsa generate`: shell completions (`clap_complete`) and man pages (`clap_mangen`), made
//! from the command line's own definition, so they cannot drift from it.
//!
//! ```sh
//! vmsa generate completions bash > ~/.local/share/bash-completion/completions/vmsa
//! vmsa generate man --out ~/.local/share/man/man1        # vmsa.1, vmsa-measure.1, …
//! ```
use super::CmdResult;
use clap::CommandFactory;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `vmsa generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, clap::Subcommand)]
enum What {
    /// The completion script for a shell, on standard output.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The man pages: vmsa.1 and one per subcommand (vmsa-measure.1, …), into a directory.
    Man {
        /// The directory (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// `vmsa generate`, for the command line `C`.
pub fn run<C: CommandFactory>(args: &Args) -> CmdResult {
    let mut cmd = C::command();
    match &args.what {
        What::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "vmsa", &mut buf);
            crate::outln!("{}", String::from_utf8_lossy(&buf).trim_end());
        }
        What::Man { out } => {
            std::fs::create_dir_all(out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            cmd.build();
            let mut pages = vec![("vmsa".to_string(), cmd.clone())];
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                pages.push((format!("vmsa-{}", sub.get_name()), sub.clone()));
            }
            for (name, c) in pages {
                let mut buf = Vec::new();
                clap_mangen::Man::new(c)
                    .title(name.clone())
                    .render(&mut buf)
                    .map_err(|e| e.to_string())?;
                super::output::write_file(&out.join(format!("{name}.1")), &buf)?;
            }
            crate::errln!("vmsa generate: man pages written to {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
