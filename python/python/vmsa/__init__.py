"""vmsa: the initial CPU state (VMSAs) and launch digests of AMD SEV, SEV-ES and SEV-SNP guests.

The launch is computed by vmsa-core, the Rust core the ``vmsa`` command line uses, so every
digest here is the one ``vmsa measure`` prints::

    import vmsa
    l = vmsa.launch("OVMF_CODE.fd", mode="snp", vcpus=4, vcpu_type="EPYC-v4")
    l.digest.hex()                  # the SNP launch digest
    l.vmsas[1]["rip"]               # vCPU 1's VMSA, field by field
    for item in l.explain(): ...    # every measured page, with the digest after it

``vmsa.sevsnpmeasure`` mirrors sev-snp-measure's library modules: a script switches by changing
``from sevsnpmeasure import guest`` into ``from vmsa.sevsnpmeasure import guest``.
"""

from __future__ import annotations

import json as _json
import os as _os
from dataclasses import dataclass as _dataclass
from typing import Dict, List, Optional, Tuple, Union

from . import _vmsa

__version__ = _vmsa.__version__
__all__ = [
    "Vmsa", "Launch", "MeasuredItem", "launch", "snp_ovmf_hash", "diff", "report",
    "IdBlock", "id_block", "verify_id_block", "Verdict", "verify", "solve", "cpu_types",
    "cpu_sig",
]

PathLike = Union[str, "_os.PathLike[str]"]


class Vmsa:
    """A VMSA page (4096 bytes; QEMU's 1648-byte save area is accepted too), field by field.

    Fields are named as in Linux's ``struct sev_es_save_area``: ``v["rip"]``, ``v["cs"]`` (a
    ``(selector, attrib, limit, base)`` tuple), ``v["sev_features"]``; ``v.fields`` is the
    ordered dict of all of them, ``v.offsets`` their byte offsets, ``bytes(v)`` the page.
    """

    def __init__(self, page: bytes):
        self._page = bytes(page)
        self.fields, self.offsets = _vmsa.vmsa_fields(self._page)

    def __getitem__(self, name: str):
        return self.fields[name]

    def __bytes__(self) -> bytes:
        return self._page

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vmsa) and self._page == other._page

    def __repr__(self) -> str:
        return f"Vmsa(rip={self.fields['rip']:#x}, sev_features={self.fields['sev_features']:#x})"

    def diff(self, other: "Vmsa") -> List[Tuple[int, str, object, object]]:
        """The fields that differ: ``[(offset, name, ours, theirs)]``."""
        return _vmsa.vmsa_diff(self._page, bytes(other))


def diff(left: bytes, right: bytes) -> List[Tuple[int, str, object, object]]:
    """The fields in which two VMSA pages differ: ``[(offset, name, left, right)]``."""
    return _vmsa.vmsa_diff(bytes(left), bytes(right))


@_dataclass(frozen=True)
class MeasuredItem:
    """One step of a launch digest, as ``vmsa measure --explain`` lists it."""

    item: str
    gpa: int
    page_type: Optional[str]
    length: int
    contents: str
    digest_after: Optional[str]


class Launch:
    """A computed launch: ``digest`` (bytes), ``mode``, ``vmsas`` (one :class:`Vmsa` per vCPU),
    and :meth:`explain` (the measured items, when computed with ``explain=True``)."""

    def __init__(self, result: "_vmsa.LaunchResult"):
        self._result = result
        self.digest: bytes = result.digest
        self.mode: str = result.mode
        self.vmsas: List[Vmsa] = [Vmsa(p) for p in result.vmsa_pages()]

    def hexdigest(self) -> str:
        return self.digest.hex()

    def explain(self) -> List[MeasuredItem]:
        return [MeasuredItem(*i) for i in self._result.items()]

    def __repr__(self) -> str:
        return f"Launch(mode={self.mode!r}, vcpus={len(self.vmsas)}, digest={self.hexdigest()})"


def _signature(vcpu_type: Optional[str], vcpu_sig: Optional[int]) -> int:
    if vcpu_sig is not None:
        return vcpu_sig
    if vcpu_type is None:
        return 0
    for name, sig in _vmsa.cpu_types():
        if name == vcpu_type:
            return sig
    raise ValueError(f"unknown vCPU type {vcpu_type!r}")


def launch(
    firmware: PathLike,
    *,
    mode: str = "snp",
    vcpus: Optional[int] = None,
    vcpu_type: Optional[str] = None,
    vcpu_sig: Optional[int] = None,
    vmm_type: str = "qemu",
    guest_features: Optional[int] = None,
    kernel: Optional[PathLike] = None,
    initrd: Optional[PathLike] = None,
    append: Optional[str] = None,
    kernel_hashes: Optional[Tuple[bytes, bytes, bytes]] = None,
    igvm: bool = False,
    igvm_profile: str = "spec",
    svsm: Optional[PathLike] = None,
    vars_size: int = 0,
    svsm_profile: str = "launch",
    qemu: Optional[str] = None,
    host_kernel: Optional[str] = None,
    legacy_vm_type: Optional[str] = None,
    explain: bool = False,
) -> Launch:
    """The launch of ``firmware`` (an OVMF image, or an IGVM file with ``igvm=True``): what
    ``vmsa measure`` computes for the same arguments. ``kernel_hashes`` are the SHA-256s of the
    kernel, the initrd and the command line with its NUL, instead of the files (``vmsa measure
    --kernel-hash``). ``qemu`` and ``host_kernel`` are release versions (``"10.2"``,
    ``"6.8.0-45-generic"``) whose launch this is, ``legacy_vm_type`` QEMU's ``sev-guest``
    property (``vmsa profiles``). Raises ``RuntimeError`` for a launch QEMU or KVM would refuse,
    ``ValueError`` for bad arguments, ``OSError`` for unreadable files."""
    if legacy_vm_type not in (None, "on", "off", "auto"):
        raise ValueError(f"legacy_vm_type {legacy_vm_type!r}: on, off or auto")
    fw = _os.fspath(firmware)
    r = _vmsa.launch(
        mode, vcpus if vcpus is not None or igvm else 1, _signature(vcpu_type, vcpu_sig),
        ovmf=None if igvm else fw, igvm=fw if igvm else None,
        kernel=None if kernel is None else _os.fspath(kernel),
        initrd=None if initrd is None else _os.fspath(initrd), append=append,
        kernel_hashes=None if kernel_hashes is None else tuple(bytes(h) for h in kernel_hashes),
        guest_features=guest_features, vmm_type=vmm_type,
        qemu=qemu, host_kernel=host_kernel, legacy_vm_type_off=legacy_vm_type == "off",
        svsm=None if svsm is None else _os.fspath(svsm), vars_size=vars_size,
        svsm_profile=svsm_profile, igvm_profile=igvm_profile, explain=explain,
    )
    return Launch(r)


def krun_launch(
    qboot: PathLike,
    kernel: PathLike,
    initrd: PathLike,
    *,
    ram_mib: int,
    vcpus: int = 1,
    mode: str = "snp",
    kernel_gpa: int = 0x1000000,
    libkrun: str = "1.16",
    explain: bool = False,
) -> Launch:
    """A libkrun launch (``vmsa measure --krun-qboot``): libkrunfw-sev's qboot, kernel and
    initrd bundles (the bytes ``krunfw_get_qboot``/``_kernel``/``_initrd`` return; the kernel at
    ``kernel_gpa``), the boot_params libkrun writes for ``ram_mib`` and ``vcpus``, its fixed
    pages and its vCPUs (libkrun before 1.16 programmed them; ``mode="seves"`` is libkrun ≤
    1.10's)."""
    parts = libkrun.split(".")
    try:
        programmed = (int(parts[0]), int(parts[1])) < (1, 16)
    except (IndexError, ValueError):
        raise ValueError(f"libkrun {libkrun!r}: a release such as 1.16") from None
    fs = _os.fspath
    return Launch(_vmsa.krun_launch(mode, vcpus, fs(qboot), fs(kernel), fs(initrd), ram_mib,
                                    kernel_gpa=kernel_gpa, programmed=programmed,
                                    explain=explain))


def snp_ovmf_hash(ovmf: PathLike) -> bytes:
    """The SNP launch digest of an OVMF image's pages alone (sev-snp-measure's snp:ovmf-hash)."""
    return _vmsa.snp_ovmf_hash(_os.fspath(ovmf))


def report(data: bytes) -> Dict[str, object]:
    """An SNP attestation report (1184 raw bytes, or hex or base64 text) decoded: the fields
    ``vmsa report --json`` prints."""
    return _json.loads(_vmsa.report_json(bytes(data)))


@_dataclass(frozen=True)
class Verdict:
    """``vmsa verify``'s verdict on a report: ``passed`` when every check passed, and each
    check as ``(name, ok, detail)``."""

    passed: bool
    checks: List[Tuple[str, bool, str]]


def verify(report_data: bytes, key: bytes, chain: Optional[bytes] = None,
           check_time: bool = True) -> Verdict:
    """Verifies an SNP attestation report (raw, hex or base64) with its VCEK or VLEK
    certificate (DER or PEM) and AMD's chain (a PEM bundle; the built-in one by default): the
    signature, the chain, the key kind, product, TCB, chip ID and validity periods."""
    passed, checks = _vmsa.verify_report(bytes(report_data), bytes(key),
                                         None if chain is None else bytes(chain), check_time)
    return Verdict(passed, checks)


@_dataclass(frozen=True)
class IdBlock:
    """An ID block and its authentication information, and the key digests a report carries."""

    id_block: bytes
    id_auth: bytes
    id_key_digest: bytes
    author_key_digest: Optional[bytes]

    def qemu_properties(self) -> str:
        """What QEMU's ``sev-snp-guest`` object takes: ``id-block=…,id-auth=…`` (base64)."""
        import base64
        s = f"id-block={base64.b64encode(self.id_block).decode()},id-auth={base64.b64encode(self.id_auth).decode()}"
        return s + (",author-key-enabled=on" if self.author_key_digest else "")


def id_block(
    ld: bytes,
    id_key_pem: str,
    author_key_pem: Optional[str] = None,
    *,
    family_id: bytes = bytes(16),
    image_id: bytes = bytes(16),
    guest_svn: int = 0,
    policy: int = 0x30000,
) -> IdBlock:
    """Signs an ID block for launch digest ``ld`` with the ID key (and the author key), PEM
    text in SEC1 or PKCS#8 form; ECDSA P-384 with RFC 6979 nonces."""
    return IdBlock(*_vmsa.id_block(bytes(ld), id_key_pem, author_key_pem, bytes(family_id),
                                   bytes(image_id), guest_svn, policy))


def verify_id_block(block: bytes, auth: bytes) -> Tuple[bytes, Optional[bytes]]:
    """Verifies a pair as the firmware does; returns the ID and author key digests. Raises
    ``ValueError`` when a signature does not verify."""
    return _vmsa.verify_id_block(bytes(block), bytes(auth))


def solve(
    measurement: bytes,
    *,
    ovmf: Optional[List[PathLike]] = None,
    igvm: Optional[List[PathLike]] = None,
    vcpus: Tuple[int, int] = (1, 512),
    vcpu_types: Optional[List[str]] = None,
    vmm_types: Optional[List[str]] = None,
    guest_features: Optional[List[int]] = None,
    kernel: Optional[PathLike] = None,
    initrd: Optional[PathLike] = None,
    append: Optional[str] = None,
) -> Tuple[List[Dict[str, object]], int]:
    """Which launches give ``measurement`` (an SNP launch digest, 48 bytes): ``vmsa solve``'s
    search. Returns ``(matches, searched)``; each match a dict (``ovmf`` or ``igvm``,
    ``vcpus``, ``vcpu_sig``, ``vmm_type``, ``guest_features``, ``kernel_hashes``,
    ``qemu_10_1_aps`` (the APs' FCW and MXCSR 0, as QEMU ≥ 10.1 leaves them: ``vmsa
    profiles``), and for IGVM ``igvm_profile`` and ``native_zero``)."""
    fs = lambda ps: [_os.fspath(p) for p in (ps or [])]  # noqa: E731
    matches, searched, _refused = _vmsa.solve(
        bytes(measurement), fs(ovmf), fs(igvm), vcpus[0], vcpus[1], vcpu_types, vmm_types,
        guest_features, None if kernel is None else _os.fspath(kernel),
        None if initrd is None else _os.fspath(initrd), append)
    return matches, searched


def cpu_types() -> List[Tuple[str, int]]:
    """The named vCPU types and their CPUID signatures."""
    return _vmsa.cpu_types()


def cpu_sig(family: int, model: int, stepping: int) -> int:
    """The CPUID signature (EAX of leaf 1) of a family, model and stepping."""
    return _vmsa.cpu_sig(family, model, stepping)
