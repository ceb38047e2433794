"""sev-snp-measure's ``vcpu_types``: CPUID signatures of the named vCPU types."""
from .. import _vmsa


def cpu_sig(family: int, model: int, stepping: int) -> int:
    """The 32-bit CPUID signature of a family, model and stepping (AMD's CPUID Specification,
    CPUID Fn0000_0001_EAX)."""
    return _vmsa.cpu_sig(family, model, stepping)


# The CPU types of QEMU's builtin_x86_defs that sev-snp-measure names, from vmsa's table.
CPU_SIGS = {name: sig for name, sig in _vmsa.cpu_types()}
