#!/usr/bin/env python3
"""LPIPS reference fixtures for tests/test_lpips.c, and a converter of LPIPS weights to safetensors.

  scripts/lpips_reference.py fixtures OUT_DIR     writes OUT_DIR/lpips_alex_ref.safetensors, lpips_vgg_ref.safetensors
  scripts/lpips_reference.py convert IN.pth OUT.safetensors   a torch.save'd lpips.LPIPS(...).state_dict() as safetensors

The reference network is written here from torch.nn / torch.nn.functional primitives, following the `lpips` package
v0.1 (lpips/lpips.py, lpips/pretrained_networks.py; Zhang et al. 2018): the scaling layer (x - shift) / scale, the
torchvision AlexNet / VGG16 `features` split into slice1..slice5 at the ReLUs, normalize_tensor x / (sqrt(sum_c x^2)
+ 1e-10), squared difference, NetLinLayer (Dropout, then a 1x1 conv without bias), spatial mean, sum over the layers.
The fixtures use reduced widths and random weights (seeded, so the files are reproducible): each holds the network's
state_dict under the package's names, two frame pairs ref.a, ref.b [2, 3, H, W] in [-1, 1], the distances ref.dist [2]
and the gradient ref.grad = d sum(dist) / d ref.a, computed in float64 (stored as float32). Needs torch (Debian
python3-torch 1.13); the safetensors writer below uses the standard library only."""
import json
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# torchvision features: (index, kind, kernel, stride, padding); the slices end after the listed indices
ALEX = [(0, "conv", 11, 4, 2), (1, "relu"), (2, "pool", 3, 2), (3, "conv", 5, 1, 2), (4, "relu"), (5, "pool", 3, 2),
        (6, "conv", 3, 1, 1), (7, "relu"), (8, "conv", 3, 1, 1), (9, "relu"), (10, "conv", 3, 1, 1), (11, "relu")]
ALEX_SLICES = [2, 5, 8, 10, 12]
VGG = []
for block, (convs, start) in enumerate([(2, 0), (2, 5), (3, 10), (3, 17), (3, 24)]):
    if block:
        VGG.append((start - 1, "pool", 2, 2))
    for j in range(convs):
        VGG += [(start + 2 * j, "conv", 3, 1, 1), (start + 2 * j + 1, "relu")]
VGG_SLICES = [4, 9, 16, 23, 30]


class Backbone(nn.Module):
    """lpips.pretrained_networks.alexnet / vgg16 with the given conv widths: slice1..slice5 of `features`."""

    def __init__(self, layers, ends, widths):
        super().__init__()
        cin, w, start = 3, iter(widths), 0
        self.slices = []
        for k, end in enumerate(ends):
            s = nn.Sequential()
            for spec in layers:
                if start <= spec[0] < end:
                    if spec[1] == "conv":
                        cout = next(w)
                        s.add_module(str(spec[0]), nn.Conv2d(cin, cout, spec[2], stride=spec[3], padding=spec[4]))
                        cin = cout
                    elif spec[1] == "relu":
                        s.add_module(str(spec[0]), nn.ReLU(inplace=False))
                    else:
                        s.add_module(str(spec[0]), nn.MaxPool2d(kernel_size=spec[2], stride=spec[3]))
            setattr(self, "slice%d" % (k + 1), s)
            self.slices.append(s)
            start = end

    def forward(self, x):
        outs = []
        for s in self.slices:
            x = s(x)
            outs.append(x)
        return outs


class NetLinLayer(nn.Module):
    def __init__(self, chn_in):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(chn_in, 1, 1, stride=1, padding=0, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPSRef(nn.Module):
    def __init__(self, net, widths):
        super().__init__()
        layers, ends = (ALEX, ALEX_SLICES) if net == "alex" else (VGG, VGG_SLICES)
        self.register_buffer("shift", torch.Tensor([-.030, -.088, -.188])[None, :, None, None])
        self.register_buffer("scale", torch.Tensor([.458, .448, .450])[None, :, None, None])
        self.net = Backbone(layers, ends, widths)
        taps = [s[-2].out_channels if isinstance(s[-2], nn.Conv2d) else None for s in self.net.slices]
        self.lins = nn.ModuleList([NetLinLayer(c) for c in taps])
        for i, lin in enumerate(self.lins):
            setattr(self, "lin%d" % i, lin)

    def forward(self, in0, in1):
        x0, x1 = (in0 - self.shift) / self.scale, (in1 - self.shift) / self.scale
        val = 0
        for f0, f1, lin in zip(self.net(x0), self.net(x1), self.lins):
            n0 = f0 / (torch.sqrt(torch.sum(f0 ** 2, dim=1, keepdim=True)) + 1e-10)
            n1 = f1 / (torch.sqrt(torch.sum(f1 ** 2, dim=1, keepdim=True)) + 1e-10)
            val = val + lin((n0 - n1) ** 2).mean([2, 3], keepdim=True)
        return val

    def state_dict_lpips(self):
        """the names lpips.LPIPS.state_dict() uses (scaling_layer.*, net.sliceK.I.*, linL.model.1.weight)"""
        sd = {"scaling_layer.shift": self.shift, "scaling_layer.scale": self.scale}
        for k, v in self.state_dict().items():
            if k.startswith("net.") or k.startswith("lin"):
                if not k.startswith("lins."):
                    sd[k] = v
        return sd


def write_safetensors(path, tensors, metadata=None):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def fixture(net, widths, size, seed, path):
    torch.manual_seed(seed)
    m = LPIPSRef(net, widths)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d) and mod.bias is not None:
                fan_in = mod.in_channels * mod.kernel_size[0] * mod.kernel_size[1]
                mod.weight.copy_(torch.randn_like(mod.weight) * (2.0 / fan_in) ** 0.5)
                mod.bias.copy_(torch.randn_like(mod.bias) * 0.1 + 0.05)
            elif isinstance(mod, nn.Conv2d):
                mod.weight.copy_(torch.rand_like(mod.weight))  # the released lin weights are >= 0
    m.eval()
    a = torch.rand(2, 3, size[0], size[1]) * 2 - 1
    b = (a + 0.3 * torch.randn_like(a)).clamp(-1, 1)
    md = m.double()
    ad = a.double().requires_grad_(True)
    dist = md(ad, b.double()).reshape(2)
    dist.sum().backward()
    tensors = dict(m.state_dict_lpips())
    tensors.update({"ref.a": a, "ref.b": b, "ref.dist": dist.detach(), "ref.grad": ad.grad})
    write_safetensors(path, tensors, {"net": net, "widths": json.dumps(widths), "torch": torch.__version__})
    print("%s: %s widths %s, frames %dx%d, dist %s" % (path, net, widths, size[0], size[1], dist.tolist()))


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "fixtures":
        fixture("alex", [6, 10, 12, 8, 8], (41, 46), 1, sys.argv[2] + "/lpips_alex_ref.safetensors")
        fixture("vgg", [4, 4, 6, 6, 8, 8, 8, 8, 8, 8, 6, 6, 6], (20, 27), 2, sys.argv[2] + "/lpips_vgg_ref.safetensors")
    elif len(sys.argv) == 4 and sys.argv[1] == "convert":
        sd = torch.load(sys.argv[2], map_location="cpu")
        write_safetensors(sys.argv[3], {k: v for k, v in sd.items() if torch.is_tensor(v)})
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
