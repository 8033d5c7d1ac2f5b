"""Refuse to build what cannot fit: weights are counted analytically before any allocation.

Without this, ``archdsl build -e "5000x(mlp)"`` would allocate layer after layer until the
operating system kills the process; now it is a clear error that names the size.
"""

from __future__ import annotations

import os

import torch

from archdsl.errors import LimitError


def available_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can use on ``device``; None where it cannot be told (or meta)."""
    if device.type == "meta":
        return None
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def check_fits(nbytes: float, what: str, device: torch.device | None = None) -> None:
    """Raise a LimitError if ``nbytes`` cannot fit in the memory left on ``device``."""
    device = device if device is not None else torch.get_default_device()
    free = available_bytes(device)
    if free is not None and nbytes > free:
        raise LimitError(
            f"{what} needs {_gib(nbytes)} but {device.type} has {_gib(free)} available; "
            "cost it with `archdsl cost`, or build it on the meta device (`with torch.device('meta'):`) "
            "to inspect its shapes"
        )


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"
