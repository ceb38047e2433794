//! An IGVM file's `SNP_ID_BLOCK`: read as QEMU launches it, and written into a copy of the file
//! (what coconut-svsm's `igvmmeasure sign` does, with the `igvm` crate's writer as it uses).
//!
//! Unlike igvmmeasure, which appends a directive whatever the file holds (QEMU then refuses a
//! file with two: "IGVM: Multiple ID blocks encountered") and writes every file as IGVM
//! revision 1, the platform's block is replaced and the file keeps its revision.
use vmsa_core::SevMode;
use vmsa_core::id_block::{self, IdAuthInfo, IdBlock};
use vmsa_core::igvm::{IgvmFile, PlatformChoice};
use vmsa_core::launch::{self, Firmware, Launch};
use vmsa_core::measure::NoObserver;

/// The file and its SNP platform.
fn snp_platform(bytes: &[u8]) -> Result<(IgvmFile<'_>, vmsa_core::igvm::Platform), String> {
    let file = IgvmFile::parse(bytes).map_err(|e| e.to_string())?;
    let platform = file
        .select(PlatformChoice::Only(launch::mode_platform(SevMode::Snp)))
        .map_err(|e| e.to_string())?;
    Ok((file, platform))
}

/// The file and its SNP platform's compatibility mask.
fn snp(bytes: &[u8]) -> Result<(IgvmFile<'_>, u32), String> {
    let (file, p) = snp_platform(bytes)?;
    Ok((file, p.compatibility_mask))
}

/// The SNP guest policy of the file ([`launch::igvm_guest_policy`]), which QEMU puts in the ID
/// block. Refused without one (igvmmeasure: "IGVM file does not contain a guest policy").
pub fn snp_policy(bytes: &[u8]) -> Result<u64, String> {
    let (file, platform) = snp_platform(bytes)?;
    launch::igvm_guest_policy(&file, &platform).ok_or_else(|| {
        "the IGVM file has no GUEST_POLICY for its SNP platform (QEMU puts it in the ID block)"
            .into()
    })
}

/// The file's SNP `ID_BLOCK` and `ID_AUTH_INFO` as QEMU passes them to `SNP_LAUNCH_FINISH`,
/// and the directive's `author_key_enabled` (which QEMU ignores).
pub fn id_block_of(bytes: &[u8]) -> Result<(IdBlock, IdAuthInfo, bool), String> {
    let policy = snp_policy(bytes)?;
    let (file, platform) = snp_platform(bytes)?;
    launch::igvm_id_block(&file, &platform, policy)
        .ok_or_else(|| "the IGVM file has no SNP_ID_BLOCK for its SNP platform".into())
}

/// `bytes` with `block`/`auth` as the SNP platform's `SNP_ID_BLOCK`, serialized by the `igvm`
/// crate.
pub fn with_id_block(
    bytes: &[u8],
    block: &IdBlock,
    auth: &IdAuthInfo,
    author_key_enabled: bool,
) -> Result<Vec<u8>, String> {
    let (_, mask) = snp(bytes)?;
    let d = id_block::to_igvm(block, auth, mask, author_key_enabled);
    let header = igvm::IgvmDirectiveHeader::SnpIdBlock {
        compatibility_mask: d.compatibility_mask,
        author_key_enabled: d.author_key_enabled,
        reserved: [0; 3],
        ld: d.ld,
        family_id: d.family_id,
        image_id: d.image_id,
        version: d.version,
        guest_svn: d.guest_svn,
        id_key_algorithm: d.id_key_algorithm,
        author_key_algorithm: d.author_key_algorithm,
        id_key_signature: Box::new(d.id_key_signature),
        id_public_key: Box::new(d.id_public_key),
        author_key_signature: Box::new(d.author_key_signature),
        author_public_key: Box::new(d.author_public_key),
    };
    let (ours, _) = snp(bytes)?;
    let fixed = ours.fixed_header();
    let revision = match fixed.format_version {
        1 => igvm::IgvmRevision::V1,
        _ => igvm::IgvmRevision::V2 {
            arch: match fixed.architecture {
                vmsa_core::igvm::Architecture::X64 => igvm::Arch::X64,
                _ => igvm::Arch::AArch64,
            },
            page_size: fixed.page_size,
        },
    };
    let read = igvm::IgvmFile::new_from_binary(bytes, None)
        .map_err(|e| format!("the igvm crate cannot read it to write it back: {e}"))?;
    let mut directives = read.directives().to_vec();
    let is_ours = |h: &igvm::IgvmDirectiveHeader| matches!(h, igvm::IgvmDirectiveHeader::SnpIdBlock { compatibility_mask, .. } if compatibility_mask & mask != 0);
    match directives.iter().position(is_ours) {
        Some(i) => {
            directives[i] = header;
            let mut n = 0;
            directives.retain(|h| {
                n += 1;
                n - 1 == i || !is_ours(h)
            });
        }
        None => directives.push(header),
    }
    let file = igvm::IgvmFile::new(
        revision,
        read.platforms().to_vec(),
        read.initializations().to_vec(),
        directives,
    )
    .map_err(|e| format!("the igvm crate refuses the signed file: {e}"))?;
    let mut out = Vec::new();
    file.serialize(&mut out)
        .map_err(|e| format!("the igvm crate cannot write it: {e}"))?;
    Ok(out)
}

/// A signed file read back: the `igvm` crate and this reader accept it, its ID block is the one
/// written, and its launch (`measure`'s arguments, on the new file) has digest `ld`.
pub fn check_signed(
    signed: &[u8],
    measure: Option<&super::measure::Args>,
    ld: &[u8; 48],
) -> Result<(), String> {
    let fail = |e: String| format!("the signed IGVM file read back: {e}");
    igvm::IgvmFile::new_from_binary(signed, None).map_err(|e| fail(e.to_string()))?;
    let (block, _, _) = id_block_of(signed).map_err(fail)?;
    if block.ld != *ld {
        return Err(fail("its ID block binds another digest".into()));
    }
    let (file, _) = snp(signed).map_err(fail)?;
    let platform = file
        .select(PlatformChoice::Only(launch::mode_platform(SevMode::Snp)))
        .map_err(|e| fail(e.to_string()))?;
    let mut cfg = launch::LaunchConfig::new(
        SevMode::Snp,
        launch::igvm_vcpus(&file, &platform),
        vmsa_core::CpuSignature(0),
        vmsa_core::reset::VmmType::Qemu,
    );
    if let Some(m) = measure {
        cfg.vcpus = m.vcpus.unwrap_or(cfg.vcpus);
        cfg.igvm.profile = m.igvm_profile;
        cfg.igvm.native_zero = m.native_zero;
        if let Ok(Some(sig)) = m.cpu.signature() {
            cfg.signature = sig;
        }
        cfg.vmm = m.vmm_type;
    }
    let fw = Firmware::Igvm { file, platform };
    let l = Launch::new(&fw, &cfg).map_err(|e| fail(e.to_string()))?;
    let (d, NoObserver) = l
        .digest(&vmsa_pagehash::Parallel::all_cores(), NoObserver)
        .map_err(|e| fail(e.to_string()))?;
    if d.bytes() != ld {
        return Err(fail("its launch digest changed".into()));
    }
    Ok(())
}
