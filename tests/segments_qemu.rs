//! 32- and 64-bit segments, anchored outside our code: the segment registers of a real guest in
//! long mode as QEMU shows them (`info registers` of Debian's OVMF booted under KVM), decoded
//! by QEMU's own monitor text (`DPL=n CS64 [-R-]`, `DS [-WA]`: `cpu_x86_dump_seg_cache` in
//! QEMU's `target/i386/cpu-dump.c`), then programmed into a real KVM vCPU from a VMSA and read
//! back. The reset comparison (`core/tests/reset_qemu.rs`) sees only 16-bit real-mode segments;
//! here the G, D/B and L bits are set and checked.
mod common;

use common::kvm_or_skip;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use vmsa_core::{SegmentAttributes, VmcbSegment, Vmsa};
use vmsa_kvm::testfw;
use vmsa_kvm::vm::{Vm, VmConfig};
use zerocopy::FromZeros;

const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// `info registers` of OVMF booted for `secs` seconds under KVM, one vCPU.
fn ovmf_registers_after(secs: u64) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-S",
            "-machine",
            "q35,accel=kvm",
            "-cpu",
            "qemu64",
            "-m",
            "256",
        ])
        .args([
            "-bios",
            OVMF,
            "-display",
            "none",
            "-nodefaults",
            "-monitor",
            "stdio",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 starts");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"cont\n").unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    stdin.write_all(b"stop\ninfo registers\nquit\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One segment line: `CS =0038 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]`.
#[derive(Debug)]
struct QemuSegment {
    name: String,
    selector: u16,
    base: u64,
    limit: u32,
    flags: u32,
    /// What QEMU says of it, after the four numbers.
    text: String,
}

fn segments(dump: &str) -> Vec<QemuSegment> {
    dump.lines()
        .filter_map(|l| {
            let (name, rest) = l.split_once('=')?;
            let name = name.trim();
            if !["ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"].contains(&name) {
                return None;
            }
            let mut t = rest.split_whitespace();
            let mut num = || u64::from_str_radix(t.next()?, 16).ok();
            let (selector, base, limit, flags) = (num()?, num()?, num()?, num()?);
            let text = rest
                .split_whitespace()
                .skip(4)
                .collect::<Vec<_>>()
                .join(" ");
            Some(QemuSegment {
                name: name.to_owned(),
                selector: selector.try_into().ok()?,
                base,
                limit: limit.try_into().ok()?,
                flags: flags.try_into().ok()?,
                text,
            })
        })
        .collect()
}

fn value(dump: &str, name: &str) -> u64 {
    let key = format!("{name}=");
    dump.split_whitespace()
        .find_map(|t| t.strip_prefix(&key))
        .and_then(|v| u64::from_str_radix(v, 16).ok())
        .unwrap_or_else(|| panic!("{name} not in:\n{dump}"))
}

/// QEMU's own words for a present code or data segment, from our decoding of its flags:
/// `DPL=n CS64|CS32|CS16 [C-R-A]` or `DPL=n DS|DS16 [E-W-A]` (`cpu_x86_dump_seg_cache`; in
/// long mode every data segment is "DS").
fn qemu_words(a: SegmentAttributes, long_mode: bool) -> String {
    let t = a.segment_type();
    let bit = |m: u8, c: char| if t & m != 0 { c } else { '-' };
    let kind = if t & 8 != 0 {
        let size = if a.long() {
            "CS64"
        } else if a.db() {
            "CS32"
        } else {
            "CS16"
        };
        format!("{size} [{}{}", bit(4, 'C'), bit(2, 'R'))
    } else {
        let size = if a.db() || long_mode { "DS  " } else { "DS16" };
        format!("{size} [{}{}", bit(4, 'E'), bit(2, 'W'))
    };
    let words = format!("DPL={} {kind}{}]", a.dpl(), bit(1, 'A'));
    words.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn long_mode_segments_of_a_real_guest_decode_as_qemu_says_and_survive_kvm() {
    if !common::require::file("ovmf", OVMF)
        || !common::require::qemu()
        || !kvm_or_skip("QEMU under KVM and programming a vCPU")
    {
        return;
    }
    // OVMF is in long mode (its DXE phase) well within three seconds; wait longer if not.
    let dump = [3, 8]
        .into_iter()
        .map(ovmf_registers_after)
        .find(|d| d.contains("CS64"))
        .expect("OVMF reaches long mode under QEMU/KVM");
    let efer = value(&dump, "EFER");
    assert_eq!(efer & 0x500, 0x500, "LME and LMA: {efer:#x}");
    let segs = segments(&dump);
    assert_eq!(segs.len(), 8, "{dump}");

    let mut v = Vmsa::new_zeroed();
    let mut long_bits = (false, false, false); // (L, D/B, G) seen
    for s in &segs {
        let a = SegmentAttributes::from_segcache(s.flags)
            .unwrap_or_else(|e| panic!("{}: flags {:#x}: {e}", s.name, s.flags));
        // Lossless both ways.
        assert_eq!(a.to_segcache().unwrap(), s.flags, "{}", s.name);
        if a.present() && a.code_or_data() {
            assert_eq!(
                qemu_words(a, true),
                s.text,
                "{} flags {:#010x}",
                s.name,
                s.flags
            );
            long_bits.0 |= a.long();
            long_bits.1 |= a.db();
            long_bits.2 |= a.granularity();
        }
        let seg = VmcbSegment::new(s.selector, a, s.limit, s.base);
        match s.name.as_str() {
            "ES" => v.es = seg,
            "CS" => v.cs = seg,
            "SS" => v.ss = seg,
            "DS" => v.ds = seg,
            "FS" => v.fs = seg,
            "GS" => v.gs = seg,
            "LDT" => v.ldtr = seg,
            "TR" => v.tr = seg,
            _ => unreachable!(),
        }
    }
    assert_eq!(long_bits, (true, true, true), "L, D/B and G all exercised");

    // The same segments, with QEMU's control registers, through a real vCPU and back.
    v.cr0 = value(&dump, "CR0");
    v.cr3 = value(&dump, "CR3");
    v.cr4 = value(&dump, "CR4");
    v.efer = efer;
    v.rip = value(&dump, "RIP");
    v.rflags = 2;
    let back = program_and_read(&v);
    for (name, want, got) in [
        ("es", v.es, back.es),
        ("cs", v.cs, back.cs),
        ("ss", v.ss, back.ss),
        ("ds", v.ds, back.ds),
        ("fs", v.fs, back.fs),
        ("gs", v.gs, back.gs),
        ("tr", v.tr, back.tr),
    ] {
        assert_eq!(got, want, "{name} after KVM_SET_SREGS/KVM_GET_SREGS");
    }
    assert_eq!((back.cr0, back.cr4, back.efer), (v.cr0, v.cr4, v.efer));
}

/// A flat 32-bit protected-mode state (what OVMF's SEC sets up before long mode: code 0x10 and
/// data 0x18, 4 GiB, G and D/B set), derived by hand from the descriptors 0x00cf9b000000ffff and
/// 0x00cf93000000ffff: through a real vCPU and back, unchanged.
#[test]
fn flat_32_bit_segments_survive_kvm() {
    if !kvm_or_skip("programming a vCPU") {
        return;
    }
    // Descriptor bits 40..47 (type, S, DPL, P) and 52..55 (AVL, L, D/B, G) → VMSA attributes
    // 0xc9b (code) and 0xc93 (data).
    let code = SegmentAttributes::new(0xc9b).unwrap();
    let data = SegmentAttributes::new(0xc93).unwrap();
    assert!(code.db() && code.granularity() && !code.long() && code.present());
    assert_eq!(qemu_words(code, false), "DPL=0 CS32 [-RA]");
    assert_eq!(qemu_words(data, false), "DPL=0 DS [-WA]");
    let mut v = Vmsa::new_zeroed();
    v.cs = VmcbSegment::new(0x10, code, 0xffff_ffff, 0);
    for s in [&mut v.ds, &mut v.es, &mut v.ss, &mut v.fs, &mut v.gs] {
        *s = VmcbSegment::new(0x18, data, 0xffff_ffff, 0);
    }
    v.tr = VmcbSegment::new(0, SegmentAttributes::new(0x8b).unwrap(), 0xffff, 0);
    v.cr0 = 0x11; // PE | ET
    v.rflags = 2;
    let back = program_and_read(&v);
    for (name, want, got) in [
        ("cs", v.cs, back.cs),
        ("ds", v.ds, back.ds),
        ("ss", v.ss, back.ss),
    ] {
        assert_eq!(got, want, "{name}");
    }
}

fn program_and_read(v: &Vmsa) -> Vmsa {
    let mut vm = Vm::new(&VmConfig {
        ram_size: testfw::RAM_SIZE,
        firmware: testfw::image(),
        vcpus: 1,
    })
    .expect("a KVM VM");
    let v: Vmsa = zerocopy::FromBytes::read_from_bytes(v.as_page()).unwrap();
    vm.program(std::slice::from_ref(&v), false)
        .expect("programmed");
    vm.read_vmsa(0).expect("read back").0
}
