"""Peak memory as each benchmark reports it: the process's own high-water mark (VmHWM).

Not ``ru_maxrss``: a child started with vfork and exec keeps its parent's peak in it, so a child
measured after its parent generated the data reported the parent's peak (drift: 416 MiB for the
same code that measured 228 MiB when the files already existed)."""


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), of its own address space only."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
