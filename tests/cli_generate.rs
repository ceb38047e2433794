//! `vmsa generate`: the completion scripts and man pages come from the command line's own
//! definition: every subcommand and a recent flag in each, bash's script valid bash, one man
//! page per subcommand.
mod common;

use common::{TempDir, vmsa_bin};
use std::process::Command;

const SUBCOMMANDS: [&str; 11] = [
    "capture", "inspect", "reset", "diff", "measure", "run", "report", "verify", "solve",
    "id-block", "generate",
];

#[test]
fn completions_name_every_subcommand_and_bash_reads_them() {
    let (code, bash, err) = vmsa_bin(&["generate", "completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    for s in SUBCOMMANDS {
        assert!(bash.contains(s), "{s}");
    }
    assert!(bash.contains("--svsm-profile") && bash.contains("--verify-igvm"));
    let dir = TempDir::new("completions");
    let script = dir.write("vmsa.bash", bash.as_bytes());
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success());
    let (code, zsh, _) = vmsa_bin(&["generate", "completions", "zsh"]);
    assert_eq!(code, 0);
    assert!(zsh.starts_with("#compdef vmsa"), "{}", &zsh[..40]);
    let (code, _, err) = vmsa_bin(&["generate", "completions", "tcsh"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn one_man_page_per_subcommand() {
    let dir = TempDir::new("man");
    let out = dir.join("man1");
    let (code, _, err) = vmsa_bin(&["generate", "man", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let top = std::fs::read_to_string(out.join("vmsa.1")).unwrap();
    assert!(
        top.starts_with(".ie") || top.contains(".TH vmsa"),
        "{}",
        &top[..80]
    );
    for s in SUBCOMMANDS {
        let page = std::fs::read_to_string(out.join(format!("vmsa-{s}.1"))).unwrap();
        assert!(page.contains(&format!(".TH vmsa-{s} 1")), "{s}");
        assert!(
            page.contains(&format!("vmsa\\-{} \\- ", s.replace('-', "\\-"))),
            "{s}"
        );
    }
    let measure = std::fs::read_to_string(out.join("vmsa-measure.1")).unwrap();
    assert!(measure.contains("svsm\\-profile"));
    assert!(!out.join("vmsa-help.1").exists());
}
