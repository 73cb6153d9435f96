#!/usr/bin/env python3
"""torchrun for Debian's python3-torch: 1.13 on Python 3.11 (Debian 12), and 2.6 built
without libuv (Debian 13). Run it where you would run torchrun; it takes torchrun's own
arguments and starts torchrun's main() after patching the two defects below in memory
(nothing on disk changes). Other PyTorch builds (pip wheels, NGC containers) do not need
it: their torchrun works as shipped. Run there, the first patch is skipped (it applies only
when the defect is present) and the second makes the static rendezvous store use the classic
TCPStore backend, which every build has.

Usage: python3 scripts/torchrun_compat.py [torchrun args...]
   e.g. python3 scripts/torchrun_compat.py --nproc_per_node 8 --no_python build/bin/aim-train --config ...

1. Python >= 3.11 with torch 1.13 (Debian 12):
torch/distributed/elastic/multiprocessing/api.py, Std.from_str() -> inner to_std(), maps "--redirects"/"--tee" values to Std by iterating
`for s in Std`.  Std is an enum.IntFlag; since Python 3.11 iterating a Flag
yields only canonical single-bit members (OUT=1, ERR=2), not NONE=0 or the
alias ALL=3.  So the default "--redirects 0" / "--tee 0" (and "3") fall
through and to_std() returns None; later to_map(None, n) calls None.get()
and torchrun dies with "AttributeError: 'NoneType' object has no attribute
'get'" before any worker is started.

Fix: replace Std.from_str with a version that converts via Std(int(v)),
then run torchrun's main() exactly like `python3 -m torch.distributed.run`
(same argv: sys.argv[1:] is parsed by torchrun's own argparse).

2. torch >= 2.4 built without libuv (Debian 13's 2.6): torchrun's static rendezvous asks its
TCPStore for the libuv backend and dies with "use_libuv was requested but PyTorch was build
without libuv support". Fix: create that store with use_libuv=False (the classic backend,
which every build has). aim's own store never asks for libuv.
"""
import re
import sys
from typing import Dict, Union

from torch.distributed.elastic.multiprocessing import api as _mp_api

_Std = _mp_api.Std


def _from_str(cls, vm: str) -> Union["_Std", Dict[int, "_Std"]]:
    def to_std(v: str) -> "_Std":
        return cls(int(v))  # Std(0) -> NONE, Std(3) -> ALL on every Python

    if re.match(_mp_api._VALUE_REGEX, vm):
        return to_std(vm)
    if re.match(_mp_api._MAPPING_REGEX, vm):
        d: Dict[int, _Std] = {}
        for m in vm.split(","):
            i, v = m.split(":")
            d[int(i)] = to_std(v)
        return d
    raise ValueError(
        f"{vm} does not match: <{_mp_api._VALUE_REGEX}> or <{_mp_api._MAPPING_REGEX}>"
    )


# Patch only when broken (Python >= 3.11 with an unfixed torch).
if _Std.from_str("0") is None:
    _Std.from_str = classmethod(_from_str)

# Debian 13's torch 2.6 is built without libuv, but from 2.4 on torchrun's static rendezvous
# creates its TCPStore with the libuv default and dies with "use_libuv was requested but
# PyTorch was build without libuv support". Ask that store for the classic backend.
def _patch_static_store_libuv():
    import torch
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    if (major, minor) < (2, 4):
        return
    from torch.distributed.elastic.rendezvous import static_tcp_rendezvous as _static

    _TCPStore = _static.TCPStore

    def _classic_tcp_store(*args, **kwargs):
        kwargs.setdefault("use_libuv", False)
        return _TCPStore(*args, **kwargs)

    _static.TCPStore = _classic_tcp_store


_patch_static_store_libuv()

if __name__ == "__main__":
    from torch.distributed.run import main

    main()
