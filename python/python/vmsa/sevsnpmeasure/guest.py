"""sev-snp-measure's ``guest``: launch digests, computed by vmsa-core."""
import os
import pathlib

from .. import _vmsa
from .sev_mode import SevMode
from .vmm_types import VMMType

_VMM = {VMMType.QEMU: "qemu", VMMType.ec2: "ec2", VMMType.gce: "gce"}


def _path(p):
    return None if p is None or p == "" else os.fspath(p)


def calc_launch_digest(mode: SevMode, vcpus: int, vcpu_sig: int, ovmf_file: str,
                       kernel: str, initrd: str, append: str, guest_features: int,
                       snp_ovmf_hash_str: str = '', vmm_type: VMMType = VMMType.QEMU,
                       dump_vmsa: bool = False, svsm_file: str = '',
                       ovmf_vars_size: int = 0) -> bytes:
    """The launch digest of ``mode`` (SHA-384 for SNP, SHA-256 for SEV and SEV-ES); with
    ``dump_vmsa`` the VMSAs are written to ``vmsa<N>.bin`` in the current directory."""
    if snp_ovmf_hash_str and mode != SevMode.SEV_SNP:
        raise ValueError("SNP OVMF hash only works with SNP")
    if mode == SevMode.SEV_SNP_SVSM and vmm_type != VMMType.QEMU:
        raise AssertionError("SVSM mode is only implemented for Qemu.")
    if mode not in (SevMode.SEV, SevMode.SEV_ES, SevMode.SEV_SNP, SevMode.SEV_SNP_SVSM):
        raise ValueError("unknown mode")
    names = {SevMode.SEV: "sev", SevMode.SEV_ES: "sev-es", SevMode.SEV_SNP: "snp",
             SevMode.SEV_SNP_SVSM: "snp"}
    svsm = mode == SevMode.SEV_SNP_SVSM
    kernel = None if svsm else _path(kernel)
    result = _vmsa.launch(
        names[mode],
        vcpus if mode != SevMode.SEV else 1,
        vcpu_sig or 0,
        ovmf=os.fspath(ovmf_file),
        kernel=kernel,
        initrd=_path(initrd) if kernel else None,
        append=(append or None) if kernel else None,
        # sev-snp-measure: the features for SNP only (SEV-ES VMSAs carry 0; the SVSM's 0x1).
        guest_features=guest_features if mode == SevMode.SEV_SNP else None,
        vmm_type=_VMM[vmm_type],
        snp_ovmf_hash=snp_ovmf_hash_str or None,
        svsm=_path(svsm_file) if svsm else None,
        vars_size=ovmf_vars_size,
        svsm_profile="sev-snp-measure",
    )
    if dump_vmsa and mode != SevMode.SEV:
        for i, page in enumerate(result.vmsa_pages()):
            pathlib.Path(f"vmsa{i}.bin").write_bytes(page)
    return result.digest


def calc_snp_ovmf_hash(ovmf_file: str) -> bytes:
    """The SNP launch digest of the OVMF image's pages alone."""
    return _vmsa.snp_ovmf_hash(os.fspath(ovmf_file))
