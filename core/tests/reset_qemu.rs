//! The plain (non-SEV) reset state equals what QEMU shows under KVM: `qemu-system-x86_64 -S
//! -machine q35,accel=kvm -cpu MODEL -monitor stdio`, `info registers -a`, every vCPU.
//! Needs `/dev/kvm` and `qemu-system-x86_64`; says SKIPPED when either is missing (a failure under `VMSA_REQUIRE=kvm,qemu`).
mod common;

use common::kvm_or_skip;
use std::io::Write;
use std::process::{Command, Stdio};
use vmsa_core::CpuSignature;
use vmsa_core::reset::architectural_reset;
use vmsa_core::{VmcbSegment, Vmsa};

fn qemu_available() -> bool {
    if !kvm_or_skip("QEMU under KVM") {
        return false;
    }
    common::require::qemu()
}

/// `info registers -a` of a stopped q35/KVM machine with `smp` vCPUs of `cpu`.
fn info_registers(cpu: &str, smp: u32) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-S",
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            cpu,
            "-monitor",
            "stdio",
        ])
        .args(["-display", "none", "-nodefaults", "-smp", &smp.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 starts");
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"info registers -a\nquit\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `NAME=value` pairs and segment lines of one CPU's block.
struct Regs<'a>(Vec<&'a str>);

impl<'a> Regs<'a> {
    fn value(&self, name: &str) -> u64 {
        let key = format!("{name}=");
        for line in &self.0 {
            for tok in line.split_whitespace() {
                if let Some(v) = tok.strip_prefix(&key) {
                    return u64::from_str_radix(v, 16).unwrap();
                }
            }
        }
        panic!("{name} not in info registers");
    }

    /// `CS =f000 ffff0000 0000ffff 00009b00` → (selector, base, limit, flags).
    fn segment(&self, name: &str) -> (u64, u64, u64, u64) {
        let line = self
            .0
            .iter()
            .find(|l| l.starts_with(name) && l[name.len()..].trim_start().starts_with('='))
            .unwrap_or_else(|| panic!("{name} not in info registers"));
        let rest = line.split_once('=').unwrap().1;
        let f: Vec<u64> = rest
            .split_whitespace()
            .take(4)
            .map(|t| u64::from_str_radix(t, 16).unwrap())
            .collect();
        match f.len() {
            4 => (f[0], f[1], f[2], f[3]),
            2 => (0, f[0], f[1], 0), // GDT/IDT: base limit
            _ => panic!("{line}"),
        }
    }
}

fn cpus(out: &str) -> Vec<Regs<'_>> {
    let mut blocks = Vec::new();
    for part in out.split("CPU#").skip(1) {
        blocks.push(Regs(part.lines().collect()));
    }
    blocks
}

fn check_segment(regs: &Regs<'_>, name: &str, seg: &VmcbSegment) {
    let (sel, base, limit, flags) = regs.segment(name);
    assert_eq!(sel, u64::from(seg.selector), "{name} selector");
    assert_eq!(base, seg.base, "{name} base");
    assert_eq!(limit, u64::from(seg.limit), "{name} limit");
    assert_eq!(
        flags,
        u64::from(seg.attrib.to_segcache().unwrap()),
        "{name} flags"
    );
}

fn check(cpu: &str, want: &Vmsa) {
    let out = info_registers(cpu, 2);
    let cpus = cpus(&out);
    assert_eq!(cpus.len(), 2, "two vCPUs in:\n{out}");
    for regs in &cpus {
        for (name, v) in [
            ("EAX", want.rax),
            ("EBX", want.rbx),
            ("ECX", want.rcx),
            ("EDX", want.rdx),
            ("ESI", want.rsi),
            ("EDI", want.rdi),
            ("EBP", want.rbp),
            ("ESP", want.rsp),
            ("EIP", want.rip),
            ("EFL", want.rflags),
            ("CPL", u64::from(want.cpl)),
            ("CR0", want.cr0),
            ("CR2", want.cr2),
            ("CR3", want.cr3),
            ("CR4", want.cr4),
            ("DR0", want.dr0),
            ("DR1", want.dr1),
            ("DR2", want.dr2),
            ("DR3", want.dr3),
            ("DR6", want.dr6),
            ("DR7", want.dr7),
            ("EFER", want.efer),
            ("FCW", u64::from(want.x87_fcw)),
            ("FSW", u64::from(want.x87_fsw)),
            ("FTW", u64::from(want.x87_ftw)),
            ("MXCSR", u64::from(want.mxcsr)),
        ] {
            assert_eq!(regs.value(name), v, "{cpu}: {name}");
        }
        for (name, seg) in [
            ("ES", &want.es),
            ("CS", &want.cs),
            ("SS", &want.ss),
            ("DS", &want.ds),
            ("FS", &want.fs),
            ("GS", &want.gs),
            ("LDT", &want.ldtr),
            ("TR", &want.tr),
        ] {
            check_segment(regs, name, seg);
        }
        for (name, seg) in [("GDT", &want.gdtr), ("IDT", &want.idtr)] {
            let (_, base, limit, _) = regs.segment(name);
            assert_eq!(
                (base, limit),
                (seg.base, u64::from(seg.limit)),
                "{cpu}: {name}"
            );
        }
        assert!(want.fpreg_xmm.iter().all(|&b| b == 0));
        assert!(
            regs.0
                .iter()
                .filter(|l| l.starts_with("XMM") || l.starts_with("FPR"))
                .all(|l| l.split_whitespace().all(|t| t
                    .split('=')
                    .next_back()
                    .unwrap()
                    .chars()
                    .all(|c| c == '0')))
        );
    }
}

#[test]
fn qemu64_reset_state_matches_qemu_under_kvm() {
    if !qemu_available() {
        return;
    }
    let sig = CpuSignature::named("qemu64").unwrap();
    assert_eq!(sig, CpuSignature(0x60fb1));
    check("qemu64", &architectural_reset(sig));
}

#[test]
fn epyc_reset_state_matches_qemu_under_kvm() {
    if !qemu_available() {
        return;
    }
    let sig = CpuSignature::named("EPYC").unwrap();
    check("EPYC", &architectural_reset(sig));
}
