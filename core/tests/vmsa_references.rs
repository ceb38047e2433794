//! Every field of the VMSA layout against two definitions written by others: the `igvm`
//! crate's `snp_defs::SevVmsa` (compiled, `offset_of!` on both structs) and Linux's
//! `struct sev_es_save_area` (a table written out from the kernel header, see
//! `reference/linux_sev_es_save_area.rs`). Our compile-time asserts compare the struct with
//! literals from the same macro; these tests are what would catch two fields swapped.
//!
//! Where the references name a range differently, the comment at the mapping says which
//! specification settles it.

#[path = "reference/linux_sev_es_save_area.rs"]
mod linux;

use core::mem::{offset_of, size_of};
use igvm::snp_defs::SevVmsa;
use vmsa_core::Vmsa;
use vmsa_core::vmsa::{FIELDS, FieldKind};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// (our field, the igvm crate's field) for every field both name with equal offset and size.
/// Named differently: `g_pat` is igvm `pat`, `isst_addr` `interrupt_ssp_table_addr`,
/// `reserved_3f0` igvm `xsave_valid_bitmap` (reserved in Linux's header). Not here, because the
/// crate folds them into larger fields: `pkru`, `tsc_aux`, `tsc_scale`, `tsc_offset` and
/// `reserved_300` (in igvm `vmsa_reserved7`, 0x2e8..0x308; Linux mainline names them as we
/// do) and `fpreg_x87` (igvm splits the 80 bytes in three): [`IGVM_WITHIN`].
macro_rules! igvm_pairs {
    ($m:ident) => {
        $m! {
        (es, es),
        (cs, cs),
        (ss, ss),
        (ds, ds),
        (fs, fs),
        (gs, gs),
        (gdtr, gdtr),
        (ldtr, ldtr),
        (idtr, idtr),
        (tr, tr),
        (pl0_ssp, pl0_ssp),
        (pl1_ssp, pl1_ssp),
        (pl2_ssp, pl2_ssp),
        (pl3_ssp, pl3_ssp),
        (u_cet, u_cet),
        (reserved_0c8, vmsa_reserved1),
        (vmpl, vmpl),
        (cpl, cpl),
        (reserved_0cc, vmsa_reserved2),
        (efer, efer),
        (reserved_0d8, vmsa_reserved3),
        (xss, xss),
        (cr4, cr4),
        (cr3, cr3),
        (cr0, cr0),
        (dr7, dr7),
        (dr6, dr6),
        (rflags, rflags),
        (rip, rip),
        (dr0, dr0),
        (dr1, dr1),
        (dr2, dr2),
        (dr3, dr3),
        (dr0_addr_mask, dr0_addr_mask),
        (dr1_addr_mask, dr1_addr_mask),
        (dr2_addr_mask, dr2_addr_mask),
        (dr3_addr_mask, dr3_addr_mask),
        (reserved_1c0, vmsa_reserved4),
        (rsp, rsp),
        (s_cet, s_cet),
        (ssp, ssp),
        (isst_addr, interrupt_ssp_table_addr),
        (rax, rax),
        (star, star),
        (lstar, lstar),
        (cstar, cstar),
        (sfmask, sfmask),
        (kernel_gs_base, kernel_gs_base),
        (sysenter_cs, sysenter_cs),
        (sysenter_esp, sysenter_esp),
        (sysenter_eip, sysenter_eip),
        (cr2, cr2),
        (reserved_248, vmsa_reserved5),
        (g_pat, pat),
        (dbgctl, dbgctl),
        (br_from, last_branch_from_ip),
        (br_to, last_branch_to_ip),
        (last_excp_from, last_excp_from_ip),
        (last_excp_to, last_excp_to_ip),
        (reserved_298, vmsa_reserved6),
        (spec_ctrl, spec_ctrl),
        (rcx, rcx),
        (rdx, rdx),
        (rbx, rbx),
        (reserved_320, vmsa_reserved8),
        (rbp, rbp),
        (rsi, rsi),
        (rdi, rdi),
        (r8, r8),
        (r9, r9),
        (r10, r10),
        (r11, r11),
        (r12, r12),
        (r13, r13),
        (r14, r14),
        (r15, r15),
        (reserved_380, vmsa_reserved9),
        (guest_exit_info_1, exit_info1),
        (guest_exit_info_2, exit_info2),
        (guest_exit_int_info, exit_int_info),
        (guest_nrip, next_rip),
        (sev_features, sev_features),
        (vintr_ctrl, v_intr_cntrl),
        (guest_exit_code, guest_error_code),
        (virtual_tom, virtual_tom),
        (tlb_id, tlb_id),
        (pcpu_id, pcpu_id),
        (event_inj, event_inject),
        (xcr0, xcr0),
        (reserved_3f0, xsave_valid_bitmap),
        (x87_dp, x87dp),
        (mxcsr, mxcsr),
        (x87_ftw, x87_ftw),
        (x87_fsw, x87_fsw),
        (x87_fcw, x87_fcw),
        (x87_fop, x87_op),
        (x87_ds, x87_ds),
        (x87_cs, x87_cs),
        (x87_rip, x87_rip),
        (fpreg_xmm, xmm_registers),
        (fpreg_ymm, ymm_registers),
        (reserved_670, vmsa_padding),
            }
    };
}

/// Our fields inside a larger igvm field: (ours, theirs, byte offset inside theirs).
const IGVM_WITHIN: &[(&str, usize, usize)] = &[
    ("pkru", offset_of!(SevVmsa, vmsa_reserved7), 0),
    ("tsc_aux", offset_of!(SevVmsa, vmsa_reserved7), 4),
    ("tsc_scale", offset_of!(SevVmsa, vmsa_reserved7), 8),
    ("tsc_offset", offset_of!(SevVmsa, vmsa_reserved7), 16),
    ("reserved_300", offset_of!(SevVmsa, vmsa_reserved7), 24),
    ("fpreg_x87", offset_of!(SevVmsa, x87_registers1), 0),
];

fn ours(name: &str) -> (usize, usize) {
    let f = FIELDS.iter().find(|f| f.name == name);
    let f = f.unwrap_or_else(|| panic!("no field {name} in FIELDS"));
    (f.offset, f.size)
}

#[test]
fn every_field_at_the_igvm_crates_offset_and_size() {
    assert_eq!(size_of::<Vmsa>(), size_of::<SevVmsa>());
    let mut checked = 0;
    let z = Vmsa::new_zeroed();
    let y = SevVmsa::new_zeroed();
    macro_rules! check {
        ($(($o:ident, $t:ident)),* $(,)?) => { $(
            let (o, t) = (offset_of!(Vmsa, $o), offset_of!(SevVmsa, $t));
            assert_eq!(o, t, "{} at {o:#x}, igvm {} at {t:#x}", stringify!($o), stringify!($t));
            assert_eq!(size_of_val(&z.$o), size_of_val(&y.$t), stringify!($o));
            // The table the CLI and the page read agrees with the struct.
            assert_eq!(ours(stringify!($o)), (o, size_of_val(&z.$o)), stringify!($o));
            checked += 1;
        )* };
    }
    igvm_pairs!(check);
    for &(name, theirs, delta) in IGVM_WITHIN {
        assert_eq!(ours(name).0, theirs + delta, "{name}");
        checked += 1;
    }
    // Every row of FIELDS was checked.
    assert_eq!(checked, FIELDS.len());
}

/// Values travel between the two structs field by field: a page built by the igvm crate with
/// a distinct pattern in every field reads back, through our struct, with the same pattern in
/// the field of the same meaning.
#[test]
fn a_page_built_by_the_igvm_crate_reads_back_field_by_field() {
    let mut theirs = SevVmsa::new_zeroed();
    let mut n = 0u8;
    macro_rules! fill {
        ($(($o:ident, $t:ident)),* $(,)?) => { $(
            n = n.wrapping_add(1);
            for (i, b) in theirs.$t.as_mut_bytes().iter_mut().enumerate() {
                *b = n ^ (i as u8).rotate_left(3);
            }
        )* };
    }
    igvm_pairs!(fill);
    let page = theirs.as_bytes();
    let v = Vmsa::read_from_bytes(page).expect("4096 bytes");
    let mut n = 0u8;
    macro_rules! compare {
        ($(($o:ident, $t:ident)),* $(,)?) => { $(
            n = n.wrapping_add(1);
            let want: Vec<u8> = (0..size_of_val(&v.$o)).map(|i| n ^ (i as u8).rotate_left(3)).collect();
            assert_eq!(v.$o.as_bytes(), &want[..], "{} (igvm {})", stringify!($o), stringify!($t));
        )* };
    }
    igvm_pairs!(compare);
}

/// Our name for a Linux field: the same but for the reserved gaps (`reserved_0xc8` is our
/// `reserved_0c8`).
fn from_linux(name: &str) -> String {
    match name.strip_prefix("reserved_0x") {
        Some(hex) => format!("reserved_{hex:0>3}"),
        None => name.to_string(),
    }
}

#[test]
fn every_linux_field_is_ours_or_tiled_by_ours() {
    let total: usize = linux::LINUX_SEV_ES_SAVE_AREA.iter().map(|e| e.2).sum();
    assert_eq!(total, linux::LINUX_EXPECTED_SEV_ES_SAVE_AREA_SIZE);
    for &(name, off, size) in linux::LINUX_SEV_ES_SAVE_AREA {
        let ours_name = from_linux(name);
        if let Some(f) = FIELDS.iter().find(|f| f.name == ours_name) {
            // A named field, or a gap both call reserved: the same bytes.
            if name == "reserved_0x298" {
                // Linux's one reserved range 0x298..0x2e8 holds SPEC_CTRL at 0x2e0 (APM vol. 2
                // table B-4; Linux's own `vmcb_save_area` has `spec_ctrl` "at 0x2E0" after 72
                // reserved bytes, and igvm agrees): ours is 72 bytes, then `spec_ctrl`.
                assert_eq!((f.offset, f.size), (0x298, 72));
                assert_eq!(ours("spec_ctrl"), (0x2e0, 8));
                continue;
            }
            assert_eq!((f.offset, f.size), (off, size), "{name}");
            continue;
        }
        panic!("Linux field {name} at {off:#x} has no field of ours");
    }
    // And ours beyond Linux's 1648 bytes is one reserved tail to the end of the page.
    let tail = FIELDS
        .iter()
        .find(|f| f.offset == 0x670)
        .expect("a field at 0x670");
    assert_eq!(
        (tail.name, tail.size, tail.kind),
        ("reserved_670", 4096 - 0x670, FieldKind::Reserved)
    );
}

#[test]
fn linux_6_12_differs_only_in_a_reserved_range_we_name() {
    // Debian 12's kernel headers fold tsc_scale, tsc_offset and reserved_0x300 into one
    // reserved range: the same bytes as our three fields.
    for &(_, off, size) in linux::LINUX_6_12_DELTA {
        let covered: usize = FIELDS
            .iter()
            .filter(|f| f.offset >= off && f.offset + f.size <= off + size)
            .map(|f| f.size)
            .sum();
        assert_eq!(covered, size);
        let names: Vec<_> = FIELDS
            .iter()
            .filter(|f| f.offset >= off && f.offset < off + size)
            .map(|f| f.name)
            .collect();
        assert_eq!(names, ["tsc_scale", "tsc_offset", "reserved_300"]);
    }
}
