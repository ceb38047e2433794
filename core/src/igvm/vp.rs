//! VP contexts as per-vCPU launch VMSAs (in progress).
