//! `--from-qemu`: a launch given as a QEMU command line — QEMU's own documentation example,
//! the JSON form libvirt writes, a Kata-style SEV-ES direct boot, `/proc/PID/cmdline`'s NUL
//! form — gives the digest of the same launch given with explicit flags (and, for the SNP
//! example, sev-snp-measure's); `id-block` and `verify` take it for their launch; what QEMU
//! refuses is refused.
mod common;

use common::{TempDir, fixture, peer_installed, vmsa_bin};

const OVMF: &str = "/usr/share/OVMF/OVMF_CODE.fd";

fn measure(args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["measure"];
    a.extend_from_slice(args);
    vmsa_bin(&a)
}

#[test]
fn qemus_documentation_example_measures_as_the_explicit_flags_and_the_peer() {
    if !common::require::file("ovmf", OVMF) {
        return;
    }
    // docs/system/i386/amd-memory-encryption.rst: launching an SEV-SNP guest.
    let cmd = format!(
        "qemu-system-x86_64 -enable-kvm -cpu EPYC-v4 -machine q35 -smp 4,maxcpus=255 -m 4G,slots=5,maxmem=10G \
         -machine memory-encryption=sev0,vmport=off \
         -object memory-backend-memfd,id=ram1,size=4G,share=true,prealloc=false \
         -machine memory-backend=ram1 -object sev-snp-guest,id=sev0,cbitpos=51,reduced-phys-bits=1 \
         -bios {OVMF} -nographic"
    );
    let (code, from_qemu, err) = measure(&["--from-qemu", &cmd]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("QEMU 10.1/10.2 semantics"), "{err}");
    assert!(err.contains("--vcpus 4 (-smp 4,maxcpus=255)"), "{err}");
    assert!(
        err.contains("--mode snp (-object sev-snp-guest,id=sev0)"),
        "{err}"
    );
    let (_, explicit, _) = measure(&[
        "--mode",
        "snp",
        "--vcpus",
        "4",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        OVMF,
        "--qemu",
        "10.2",
    ]);
    assert_eq!(from_qemu, explicit);
    assert!(err.contains("--qemu 10.2 (the release modelled"), "{err}");
    if peer_installed() {
        // QEMU 10.2's APs carry FCW and MXCSR 0 (`vmsa profiles`): sev-snp-measure's walk over
        // its own pages with those two fields zeroed on the APs.
        assert_eq!(
            common::peer_patched(OVMF, "snp", 4, 0x800f12, "aps", 1),
            from_qemu.trim()
        );
    }
    // A --qemu of the user's own names the release: QEMU 10.0's APs are sev-snp-measure's.
    let (code, q100, err) = measure(&["--from-qemu", &cmd, "--qemu", "10.0"]);
    assert_eq!(code, 0, "{err}");
    if peer_installed() {
        assert_eq!(
            common::peer_patched(OVMF, "snp", 4, 0x800f12, "none", 1),
            q100.trim()
        );
    }
}

#[test]
fn libvirts_and_katas_forms_and_proc_cmdline() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let dir = TempDir::new("qemu");
    let kernel = dir.write("vmlinuz", b"a kernel");
    let initrd = dir.write("initrd.img", b"an initrd");
    let (k, i) = (kernel.to_str().unwrap(), initrd.to_str().unwrap());
    // libvirt 10.x: JSON -object and -blockdev, pflash0 through a format node.
    let libvirt = [
        "/usr/bin/qemu-system-x86_64",
        "-name",
        "guest=snp,debug-threads=on",
        "-machine",
        "pc-q35-9.0,usb=off,memory-backend=pc.ram,confidential-guest-support=lsec0,pflash0=libvirt-pflash0-format",
        "-blockdev",
        &format!(
            r#"{{"driver":"file","filename":"{fw}","node-name":"libvirt-pflash0-storage","auto-read-only":true}}"#
        ),
        "-blockdev",
        r#"{"node-name":"libvirt-pflash0-format","read-only":true,"driver":"raw","file":"libvirt-pflash0-storage"}"#,
        "-cpu",
        "EPYC-Milan",
        "-smp",
        "3,sockets=3,cores=1,threads=1",
        "-object",
        r#"{"qom-type":"sev-snp-guest","id":"lsec0","cbitpos":51,"reduced-phys-bits":1,"policy":196608,"kernel-hashes":true}"#,
        "-kernel",
        k,
        "-initrd",
        i,
        "-append",
        "console=ttyS0 root=/dev/vda",
    ];
    // As /proc/PID/cmdline shows it: NUL-separated.
    let proc_cmdline = dir.write("cmdline", (libvirt.join("\0") + "\0").as_bytes());
    let (code, from_qemu, err) = measure(&["--from-qemu", proc_cmdline.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, explicit, _) = measure(&[
        "--mode",
        "snp",
        "--vcpus",
        "3",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        fw,
        "--kernel",
        k,
        "--initrd",
        i,
        "--append",
        "console=ttyS0 root=/dev/vda",
        "--qemu",
        "10.2",
    ]);
    assert_eq!(from_qemu, explicit);
    // Kata-style SEV-ES (policy bit 2) direct boot, one string.
    let kata = format!(
        "qemu-system-x86_64 -machine q35,accel=kvm,confidential-guest-support=sev -cpu EPYC-v4 -smp 1,cores=1,threads=1,sockets=2,maxcpus=2 \
         -object sev-guest,id=sev,cbitpos=51,reduced-phys-bits=1,policy=0x7,kernel-hashes=on \
         -bios {fw} -kernel {k} -append 'tsc=reliable no_timer_check quiet'"
    );
    let (code, from_qemu, err) = measure(&["--from-qemu", &kata]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--mode seves"), "{err}");
    let (_, explicit, _) = measure(&[
        "--mode",
        "seves",
        "--vcpus",
        "1",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw,
        "--kernel",
        k,
        "--append",
        "tsc=reliable no_timer_check quiet",
        "--qemu",
        "10.2",
    ]);
    assert_eq!(from_qemu, explicit);
    // QEMU's default legacy-vm-type (auto) is the legacy init; `off` is KVM_SEV_INIT2, whose
    // VMSAs carry the FPU state: sev-snp-measure's seves digest.
    let (code, init2, err) = measure(&[
        "--from-qemu",
        &kata.replace("policy=0x7", "policy=0x7,legacy-vm-type=off"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--legacy-vm-type off"), "{err}");
    assert_ne!(init2, from_qemu);
}

#[test]
fn id_block_and_verify_take_it_for_their_launch_and_qemus_refusals() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let cmd = format!(
        "-machine q35,confidential-guest-support=s -object sev-snp-guest,id=s -smp 2 -cpu EPYC-v4 -bios {fw}"
    );
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keys/id-sec1.pem");
    let (code, a, err) = vmsa_bin(&["id-block", "--id-key", key, "--from-qemu", &cmd]);
    assert_eq!(code, 0, "{err}");
    let (_, b, _) = vmsa_bin(&[
        "id-block",
        "--id-key",
        key,
        "--",
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-v4",
        "--ovmf",
        fw,
        "--qemu",
        "10.2",
    ]);
    assert_eq!(a, b);
    for (bad, want) in [
        (
            "-object sev-snp-guest,id=s,bogus=1",
            "Property 'sev-snp-guest.bogus' not found",
        ),
        ("-object sev-snp-guest,id=s -kernel /k", "kernel-hashes=on"),
        ("-object sev-snp-guest,id=s -cpu host", "--vcpu-sig"),
        ("-object sev-guest,id=t", "no -object with id=s"),
    ] {
        let c = format!("-machine q35,confidential-guest-support=s -bios {fw} {bad}");
        let (code, out, err) = measure(&["--from-qemu", &c]);
        assert_eq!((code, out.as_str()), (2, ""), "{bad}");
        assert!(err.contains(want), "{bad}: {err}");
    }
}

/// `--from-libvirt`: domains built around the `<launchSecurity>` examples of libvirt's
/// `docs/formatdomain.rst` (SEV with kernel hashes; SEV-SNP), measured as the explicit flags.
#[test]
fn libvirt_domains_measure_as_the_explicit_flags() {
    let fw = fixture("ovmf_AmdSev_suffix.bin");
    let fw = fw.to_str().unwrap();
    let dir = TempDir::new("libvirt");
    let kernel = dir.write("vmlinuz", b"a kernel");
    let k = kernel.to_str().unwrap();
    let domain = |vcpu: &str, cpu: &str, os_extra: &str, ls: &str| {
        format!(
            "<domain type='kvm'>\n  <name>guest</name>\n  <memory unit='KiB'>4194304</memory>\n  {vcpu}\n  \
             <os firmware='efi'>\n    <type arch='x86_64' machine='pc-q35-9.0'>hvm</type>\n    \
             <loader readonly='yes' type='rom'>{fw}</loader>\n    {os_extra}\n  </os>\n  {cpu}\n  {ls}\n</domain>\n"
        )
    };
    // SEV-SNP, the documentation's attributes and elements (its idBlock/idAuth omitted).
    let snp = domain(
        "<vcpu placement='static' current='2'>4</vcpu>",
        "<cpu mode='custom' match='exact'><model fallback='forbid'>EPYC-Milan</model></cpu>",
        "",
        "<launchSecurity type='sev-snp' authorKey='yes' vcek='no'>\n    <cbitpos>47</cbitpos>\n    \
         <reducedPhysBits>1</reducedPhysBits>\n    <policy>0x00030000</policy>\n  </launchSecurity>",
    );
    let path = dir.write("snp.xml", snp.as_bytes());
    let (code, out, err) = measure(&["--from-libvirt", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--vcpus 2 (<vcpu>)"), "{err}");
    let (_, explicit, _) = measure(&[
        "--mode",
        "snp",
        "--vcpus",
        "2",
        "--vcpu-type",
        "EPYC-Milan",
        "--ovmf",
        fw,
        "--qemu",
        "10.2",
    ]);
    assert_eq!(out, explicit);
    // SEV (policy 0x0001) with kernel hashes and a direct-boot kernel.
    let sev = domain(
        "<vcpu>1</vcpu>",
        "",
        &format!("<kernel>{k}</kernel>\n    <cmdline>console=ttyS0</cmdline>"),
        "<launchSecurity type='sev' kernelHashes='yes'>\n    <cbitpos>47</cbitpos>\n    \
         <reducedPhysBits>1</reducedPhysBits>\n    <policy>0x0001</policy>\n    \
         <dhCert>RBBBSDDD=FDDCCCDDDG</dhCert>\n    <session>AAACCCDD=FFFCCCDSDS</session>\n  </launchSecurity>",
    );
    let path = dir.write("sev.xml", sev.as_bytes());
    let (code, out, err) = measure(&["--from-libvirt", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (_, explicit, _) = measure(&[
        "--mode",
        "sev",
        "--ovmf",
        fw,
        "--kernel",
        k,
        "--append",
        "console=ttyS0",
    ]);
    assert_eq!(out, explicit);
    // host-passthrough: the signature is the host's.
    let host = domain(
        "<vcpu>1</vcpu>",
        "<cpu mode='host-passthrough'/>",
        "",
        "<launchSecurity type='sev-snp'/>",
    );
    let path = dir.write("host.xml", host.as_bytes());
    let (code, _, err) = measure(&["--from-libvirt", path.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("--vcpu-sig"), "{err}");
}
