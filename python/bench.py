"""In-process benchmark: sev-snp-measure's calc_launch_digest (SNP, 4 vCPUs, EPYC-v4, Debian's
OVMF_CODE.fd) against vmsa's compatibility module computing the same digest, as a ratio.
Prints; asserts only that the two digests are equal (a benchmark, not a test)."""
import sys
import time

OVMF = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/OVMF/OVMF_CODE.fd"

from sevsnpmeasure import guest as peer, vcpu_types  # noqa: E402
from sevsnpmeasure.sev_mode import SevMode as PeerMode  # noqa: E402
from vmsa.sevsnpmeasure import guest as ours  # noqa: E402
from vmsa.sevsnpmeasure.sev_mode import SevMode as OurMode  # noqa: E402

sig = vcpu_types.CPU_SIGS["EPYC-v4"]


def best(fn, rounds):
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        d = fn()
        times.append(time.perf_counter() - t)
    return min(times), d


p, pd = best(lambda: peer.calc_launch_digest(PeerMode.SEV_SNP, 4, sig, OVMF, None, None, None, 0x1), 5)
o, od = best(lambda: ours.calc_launch_digest(OurMode.SEV_SNP, 4, sig, OVMF, None, None, None, 0x1), 20)
assert pd == od, (pd.hex(), od.hex())
print(f"calc_launch_digest, SNP, 4 vCPUs, {OVMF}: sev-snp-measure {p * 1000:.1f} ms, "
      f"vmsa.sevsnpmeasure {o * 1000:.2f} ms (best of 5 and 20): {p / o:.0f}x")
