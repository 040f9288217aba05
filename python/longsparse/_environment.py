"""What the C++ libraries read from the environment when they load, set before they do.

The `longsparse` executable makes the same two choices before its main() (src/cli/main.cc):

- ``OPENBLAS_CORETYPE``: Debian's OpenBLAS mis-detects recent CPUs, and machine images set the
  variable to Haswell on AVX-512 CPUs, which halves sgemm there. Chosen from the CPU's flags:
  Cooperlake (AVX-512 BF16), SkylakeX (AVX-512), Haswell (AVX2); a different value is replaced
  unless ``LONGSPARSE_KEEP_BLAS_CORETYPE=1``.
- OpenMP's wait between parallel regions, unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is
  set: threads sleep at once when other processes are runnable (they would take the cores the
  kernels wait for), else spin up to 20,000 iterations (decode steps run ~150 regions each).

Both only take effect if ``longsparse`` is imported before anything else loads OpenBLAS or
libgomp (numpy's own OpenBLAS is a separate copy and does not matter).
"""

import os
import time


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _own_runnable_threads():
    count = 0
    try:
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] == "R":
                count += 1
    except OSError:
        pass
    return count


def _other_runnable_processes(samples=20, interval=0.01):
    """procs_running minus our own runnable threads, the least of `samples` readings."""
    least = None
    for i in range(samples):
        if i:
            time.sleep(interval)
        try:
            with open("/proc/stat") as f:
                running = next((int(l.split()[1]) for l in f if l.startswith("procs_running")), None)
        except OSError:
            return 0
        if running is None:
            return 0
        others = max(0, running - max(1, _own_runnable_threads()))
        least = others if least is None else min(least, others)
    return least or 0


def prepare():
    env = os.environ
    flags = _cpu_flags()
    core = (
        "Cooperlake" if "avx512_bf16" in flags
        else "SkylakeX" if "avx512f" in flags
        else "Haswell" if "avx2" in flags
        else None
    )
    current = env.get("OPENBLAS_CORETYPE")
    if core and not env.get("LONGSPARSE_KEEP_BLAS_CORETYPE") and current != core:
        if current:
            env["LONGSPARSE_REPLACED_BLAS_CORETYPE"] = current
        env["OPENBLAS_CORETYPE"] = core
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        others = _other_runnable_processes()
        if others > 0:
            env["OMP_WAIT_POLICY"] = "passive"
            env["LONGSPARSE_OMP_WAIT"] = f"passive ({others} other runnable at start)"
        else:
            env["GOMP_SPINCOUNT"] = "20000"
            env["LONGSPARSE_OMP_WAIT"] = "spin 20000 (machine idle at start)"
