"""Memory: how much is free now, and a one-line refusal before a size that cannot fit is allocated.

Sizes that decide memory (an MLP's widths, the seeds of the symmetry experiment, the rows of
linear regression) are checked against an estimate of the bytes they need before anything
is allocated: a number that cannot fit gets one line saying what it needs, what is free and
what to change, instead of a traceback from the allocator or the kernel's out-of-memory killer.
"""

from __future__ import annotations

import os
from typing import Any

from mlplab.errors import MlplabError

# Refuse what needs more than this share of the memory free now: the rest is the process's own
# (Python, PyTorch's libraries, the data) and other programs' headroom.
USABLE_FRACTION = 0.9


def available_memory(device: Any = "cpu") -> int | None:
    """Bytes free for new tensors on ``device`` now (the CPU's MemAvailable, a GPU's free memory); None if unknown."""
    if str(device).startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def format_bytes(count: float) -> str:
    """``512 B``, ``3.2 MB``, ``1.3 TB``: decimal units, as disks and task managers show them."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(count) < 1000 or unit == "PB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def check_memory(needed: int, what: str, advice: str, device: Any = "cpu") -> None:
    """Refuse, in one line, ``what`` when its ``needed`` bytes exceed what ``device`` has free now.

    ``what`` names the request (``"--hidden 100000000"``), ``advice`` says what to change. Where
    free memory cannot be read, nothing is refused: the allocator will say.
    """
    free = available_memory(device)
    if free is None or needed <= USABLE_FRACTION * free:
        return
    where = "this machine has" if not str(device).startswith("cuda") else f"{device} has"
    raise MlplabError(
        f"{what} needs about {format_bytes(needed)} of memory; {where} {format_bytes(free)} free; {advice}"
    )
