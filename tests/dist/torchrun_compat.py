#!/usr/bin/env python3
"""torchrun shim for Debian's python3-torch: 1.13 on Python 3.11 (Debian 12), and 2.6 built
without libuv (Debian 13).

TEST-ONLY helper: it exists solely so the distributed tests can launch
workers with torchrun on Debian 12. Do not use it for anything else.

Why: torch/distributed/elastic/multiprocessing/api.py, Std.from_str() ->
inner to_std(), maps "--redirects"/"--tee" values to Std by iterating
`for s in Std`.  Std is an enum.IntFlag; since Python 3.11 iterating a Flag
yields only canonical single-bit members (OUT=1, ERR=2), not NONE=0 or the
alias ALL=3.  So the default "--redirects 0" / "--tee 0" (and "3") fall
through and to_std() returns None; later to_map(None, n) calls None.get()
and torchrun dies with "AttributeError: 'NoneType' object has no attribute
'get'" before any worker is started.

Fix: replace Std.from_str with a version that converts via Std(int(v)),
then run torchrun's main() exactly like `python3 -m torch.distributed.run`
(same argv: sys.argv[1:] is parsed by torchrun's own argparse).

Usage: python3 tests/dist/torchrun_compat.py [torchrun args...]
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
