"""sev-snp-measure's ``vmm_types``: the VMMs whose initial vCPU state it knows."""
from enum import Enum


class VMMType(Enum):
    QEMU = 1
    ec2 = 2
    gce = 3
