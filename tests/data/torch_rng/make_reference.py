# Writes randn.bin: PyTorch's own torch.randn(n, generator=torch.Generator().manual_seed(seed)) for the
# cases below, as records (u64 seed, u64 n, n float32), little-endian. Run with a python3 that has torch
# (Debian 12: python3-torch 1.13.1, on an AVX2 CPU): python3 make_reference.py > randn.bin
import struct, sys
import torch

CASES = [(123, 16), (0, 37), (7, 1000), (125, 4609), (2**40 + 5, 64), (6666, 20000)]
out = sys.stdout.buffer
for seed, n in CASES:
    x = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    out.write(struct.pack("<QQ", seed, n))
    out.write(x.numpy().astype("<f4").tobytes())
