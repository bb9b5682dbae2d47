#!/usr/bin/env python3
"""Independent reference of the Hummingbird light VAE decoder (docs/light_vae.md), written with PyTorch.

usage: light_vae_ref.py MODEL.safetensors INPUT.safetensors OUTPUT.safetensors [MODEL INPUT OUTPUT ...]

MODEL holds the weights and __metadata__["light_vae_config"]; INPUT holds "latent" [z, t, h, w] (F32);
OUTPUT receives "video" [3, 1 + F(t-1), S h, S w] and "raw" (the head conv output before un-patchify).
The safetensors reader/writer is a few lines of json + torch (no other dependency). The network is written
from the format description only (whole clip: causal = zero time padding (kt-1, 0), else symmetric)."""
import json
import math
import struct
import sys

import torch
import torch.nn.functional as F

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    hdr = json.loads(data[8:8 + n].decode("utf-8"))
    meta = hdr.pop("__metadata__", {}) or {}
    body = data[8 + n:]
    out = {}
    for name, e in hdr.items():
        a, b = e["data_offsets"]
        t = torch.frombuffer(bytearray(body[a:b]), dtype=DT[e["dtype"]]).reshape(e["shape"])
        out[name] = t.to(torch.float64)
    return out, meta


def write_st(path, tensors):
    hdr, off, blobs = {}, 0, []
    for name, t in tensors.items():
        vals = t.detach().to(torch.float64).flatten().tolist()
        b = struct.pack("<%df" % len(vals), *vals)
        hdr[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    for i in range(0, len(args), 3):
        run(*args[i:i + 3])


def run(model, input_path, output_path):
    W, meta = read_st(model)
    cfg = json.loads(meta["light_vae_config"])
    inp, _ = read_st(input_path)
    z = inp["latent"]                              # [z, t, h, w]
    causal = cfg.get("causal", True)
    kt, ks = cfg.get("kernel", [3, 3])
    dkt, dks = cfg.get("dw_kernel", [3, 3])
    nb = len(cfg["widths"])

    def conv(x, name, groups=1, bias=True):
        w = W[name + ".weight"]
        b = W[name + ".bias"] if bias else None
        k_t, k_s = w.shape[2], w.shape[3]
        pt = k_t - 1
        pad_t = (pt, 0) if causal else (pt // 2, pt - pt // 2)
        ps = k_s // 2
        x = F.pad(x, (ps, ps, ps, ps) + pad_t)     # W, H, T (zero padding)
        return F.conv3d(x[None], w, b, groups=groups)[0]

    def sep(x, name, dw):
        if not dw:
            return conv(x, name)
        y = conv(x, name + ".dw", groups=x.shape[0], bias=False)
        return conv(y, name + ".pw")

    def norm(x, g):                                # channel RMS norm, no bias
        return F.normalize(x, dim=0, eps=1e-12) * math.sqrt(x.shape[0]) * g.view(-1, 1, 1, 1)

    if cfg.get("latent_norm", "denormalize") == "denormalize":
        z = z * W["latent.std"].view(-1, 1, 1, 1) + W["latent.mean"].view(-1, 1, 1, 1)
    x = conv(z, "conv_in")
    for i in range(nb):
        dw = bool(cfg["depthwise"][i])
        if i > 0:
            ft, fs = cfg["up_t"][i - 1], cfg["up_s"][i - 1]
            x = x.repeat_interleave(ft, dim=1).repeat_interleave(fs, dim=2).repeat_interleave(fs, dim=3)
            x = sep(x, "blocks.%d.entry" % i, dw)
        for j in range(cfg["res_blocks"][i]):
            p = "blocks.%d.res.%d." % (i, j)
            h = F.silu(norm(x, W[p + "norm1.gamma"]))
            h = sep(h, p + "conv1", dw)
            h = F.silu(norm(h, W[p + "norm2.gamma"]))
            h = sep(h, p + "conv2", dw)
            x = x + h
    x = F.silu(norm(x, W["head.norm.gamma"]))
    raw = conv(x, "head.conv")                     # [C p^2, T, H, W]
    p = cfg.get("patch", 2)
    C = cfg.get("out_channels", 3)
    Cp, T, H, Wd = raw.shape
    # un-patchify, channel c*p*p + r*p + q -> (row offset q, column offset r)
    v = raw.reshape(C, p, p, T, H, Wd).permute(0, 3, 4, 2, 5, 1).reshape(C, T, H * p, Wd * p)
    Ft = 1
    for f in cfg["up_t"]:
        Ft *= f
    v = v[:, Ft - 1:]
    if cfg.get("clamp", True):
        v = v.clamp(-1, 1)
    write_st(output_path, {"video": v, "raw": raw})


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    main()
