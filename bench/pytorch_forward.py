#!/usr/bin/env python3
"""PyTorch's forward of a Wan DiT at the shapes bench_dit and bench_quant use, for a side-by-side time.

The blocks are Wan's (Wan2.1/2.2 `WanAttentionBlock`): adaptive layer norm with the 6-way modulation, self-attention
with RMS-normed q and k and the 3-D rotary embedding, cross-attention to the text, and the tanh-GELU FFN, plus the
patch embedding and the head. Random fp32 weights (the fastest CPU mode of PyTorch here); the FLOP count is the
one hummingbird's hb_wan_dit_forward_flops uses, so GFLOP/s compare directly.

Usage: python3 bench/pytorch_forward.py [--arch wan2.1-1.3b|wan2.2-ti2v-5b] [--lat FxHxW] [--layers N]
                                         [--reps R] [--threads N]
  default: wan2.1-1.3b, latent 2x30x52 (780 tokens, as bench_quant), all layers, 1 timed forward after a warm-up
  of one layer. Exits 0 with a message when torch is missing.
"""
import argparse
import math
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("pytorch_forward: torch is not installed here; skipped")
    sys.exit(0)

ARCHS = {
    "wan2.1-1.3b": dict(dim=1536, ffn=8960, heads=12, layers=30, in_dim=16, out_dim=16, text_dim=4096, patch=(1, 2, 2)),
    "wan2.2-ti2v-5b": dict(dim=3072, ffn=14336, heads=24, layers=30, in_dim=48, out_dim=48, text_dim=4096,
                           patch=(1, 2, 2)),
}
TEXT_LEN = 512


def rope_freqs(head_dim, F_, H, W):
    """Wan's 3-D rotary table: the head dim split into frame, height and width parts (d - 4(d/6), 2(d/6), 2(d/6))."""
    d = head_dim
    parts = [d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)]
    tabs = []
    for p in parts:
        inv = 1.0 / (10000 ** (torch.arange(0, p, 2, dtype=torch.float64) / p))
        tabs.append(inv)
    f = torch.outer(torch.arange(F_, dtype=torch.float64), tabs[0])
    h = torch.outer(torch.arange(H, dtype=torch.float64), tabs[1])
    w = torch.outer(torch.arange(W, dtype=torch.float64), tabs[2])
    ang = torch.cat([f[:, None, None, :].expand(F_, H, W, -1), h[None, :, None, :].expand(F_, H, W, -1),
                     w[None, None, :, :].expand(F_, H, W, -1)], dim=-1).reshape(F_ * H * W, -1)
    return torch.polar(torch.ones_like(ang), ang).to(torch.complex64)


def apply_rope(x, freqs):  # x [L, heads, d]
    xc = torch.view_as_complex(x.float().reshape(x.shape[0], x.shape[1], -1, 2))
    return torch.view_as_real(xc * freqs[:, None, :]).flatten(2)


class Block(torch.nn.Module):
    def __init__(self, dim, ffn, heads):
        super().__init__()
        self.heads = heads
        lin = lambda i, o: torch.nn.Linear(i, o)
        self.q, self.k, self.v, self.o = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.cq, self.ck, self.cv, self.co = lin(dim, dim), lin(dim, dim), lin(dim, dim), lin(dim, dim)
        self.nq, self.nk = torch.nn.Parameter(torch.ones(dim)), torch.nn.Parameter(torch.ones(dim))
        self.cnq, self.cnk = torch.nn.Parameter(torch.ones(dim)), torch.nn.Parameter(torch.ones(dim))
        self.norm3 = torch.nn.LayerNorm(dim, elementwise_affine=True)
        self.ffn1, self.ffn2 = lin(dim, ffn), lin(ffn, dim)
        self.modulation = torch.nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def attn(self, q, k, v):  # [L, heads, d] -> [L, heads*d]; plain softmax attention (torch 1.13 has no SDPA)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))
        s = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        return (s @ v).transpose(0, 1).flatten(1)

    def forward(self, x, e, ctx, freqs):
        L, D = x.shape
        h = self.heads
        m = (self.modulation + e).chunk(6, dim=1)
        y = F.layer_norm(x, (D,)) * (1 + m[1][0]) + m[0][0]
        q = self.rms(self.q(y), self.nq).view(L, h, -1)
        k = self.rms(self.k(y), self.nk).view(L, h, -1)
        v = self.v(y).view(L, h, -1)
        x = x + self.o(self.attn(apply_rope(q, freqs), apply_rope(k, freqs), v)) * m[2][0]
        y = self.norm3(x)
        cq = self.rms(self.cq(y), self.cnq).view(L, h, -1)
        ck = self.rms(self.ck(ctx), self.cnk).view(ctx.shape[0], h, -1)
        cv = self.cv(ctx).view(ctx.shape[0], h, -1)
        x = x + self.co(self.attn(cq, ck, cv))
        y = F.layer_norm(x, (D,)) * (1 + m[4][0]) + m[3][0]
        return x + self.ffn2(F.gelu(self.ffn1(y), approximate="tanh")) * m[5][0]


def flops(c, L):
    D, FF, T, P = c["dim"], c["ffn"], TEXT_LEN, c["patch"][0] * c["patch"][1] * c["patch"][2]
    mac = L * c["in_dim"] * P * D + L * D * P * c["out_dim"]
    per_layer = L * (6 * D * D + 2 * D * FF) + 2.0 * L * L * D + 2.0 * L * T * D + 2.0 * T * D * D
    mac += per_layer * c["layers"] + T * (c["text_dim"] * D + D * D)
    return 2.0 * mac


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="wan2.1-1.3b", choices=sorted(ARCHS))
    ap.add_argument("--lat", default="2x30x52")
    ap.add_argument("--layers", type=int, default=0, help="run N layers and scale the time to the full depth")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="default: every CPU")
    a = ap.parse_args()
    c = dict(ARCHS[a.arch])
    torch.set_num_threads(a.threads if a.threads > 0 else (os.cpu_count() or 1))
    Fl, Hl, Wl = (int(v) for v in a.lat.split("x"))
    pf, ph, pw = c["patch"]
    Fg, Hg, Wg = Fl // pf, Hl // ph, Wl // pw
    L, D = Fg * Hg * Wg, c["dim"]
    run_layers = a.layers if 0 < a.layers < c["layers"] else c["layers"]
    torch.manual_seed(0)
    with torch.no_grad():
        blocks = [Block(D, c["ffn"], c["heads"]) for _ in range(run_layers)]
        patch = torch.nn.Conv3d(c["in_dim"], D, c["patch"], stride=c["patch"])
        text = torch.nn.Sequential(torch.nn.Linear(c["text_dim"], D), torch.nn.GELU(approximate="tanh"),
                                   torch.nn.Linear(D, D))
        head = torch.nn.Linear(D, c["out_dim"] * pf * ph * pw)
        x0 = torch.randn(1, c["in_dim"], Fl, Hl, Wl)
        ctx0 = torch.randn(TEXT_LEN, c["text_dim"]) * 0.2
        e = torch.randn(1, 6, D) * 0.1
        freqs = rope_freqs(D // c["heads"], Fg, Hg, Wg)

        def forward():
            x = patch(x0).flatten(2).transpose(1, 2)[0]
            ctx = text(ctx0)
            for b in blocks:
                x = b(x, e, ctx, freqs)
            return head(F.layer_norm(x, (D,)))

        blocks[0](patch(x0).flatten(2).transpose(1, 2)[0], e, text(ctx0), freqs)  # warm-up
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            forward()
            times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2] * c["layers"] / run_layers
    fl = flops(c, L)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32")
    part = "" if run_layers == c["layers"] else f" (from {run_layers} of {c['layers']} layers)"
    print(f"{a.arch} DiT forward, latent {a.lat}, {L} tokens, {TEXT_LEN} text tokens: {t:.2f} s{part}, "
          f"{fl * 1e-12:.3f} TFLOP, {fl / t * 1e-9:.1f} GFLOP/s")

if __name__ == "__main__":
    main()
