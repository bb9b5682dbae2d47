#!/usr/bin/env python3
"""Reference for `hb metrics`: PSNR, SSIM and flicker of two clips given as folders of PNG frames
(or single PNG images), computed with scikit-image. Prints the same JSON fields as `hb metrics --json`.
Exit code 77 when numpy, scikit-image or PIL is missing (the C test then skips)."""
import json
import math
import os
import sys

try:
    import numpy as np
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e}", file=sys.stderr)
    sys.exit(77)


def load(path):
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(".png") and not n.startswith("."))
        files = [os.path.join(path, n) for n in names]
    else:
        files = [path]
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def num(v):
    return None if not math.isfinite(v) else float(v)


def main():
    ref, test = load(sys.argv[1]), load(sys.argv[2])
    assert ref.shape == test.shape, (ref.shape, test.shape)
    psnr, ssim, fr, ft = [], [], [], []
    with np.errstate(divide="ignore"):
        for t in range(ref.shape[0]):
            psnr.append(peak_signal_noise_ratio(ref[t], test[t], data_range=255))
            ssim.append(structural_similarity(ref[t], test[t], gaussian_weights=True, sigma=1.5,
                                              use_sample_covariance=False, data_range=255, channel_axis=-1))
            if t == 0:
                fr.append(float("nan"))
                ft.append(float("nan"))
            else:
                fr.append(np.abs(ref[t].astype(np.float64) - ref[t - 1]).mean() / 255.0)
                ft.append(np.abs(test[t].astype(np.float64) - test[t - 1]).mean() / 255.0)
    T = ref.shape[0]
    out = {
        "frames": T, "height": ref.shape[1], "width": ref.shape[2],
        "psnr_mean": num(float(np.mean(psnr))), "ssim_mean": float(np.mean(ssim)),
        "flicker_ref_mean": float(np.mean(fr[1:])) if T > 1 else 0.0,
        "flicker_test_mean": float(np.mean(ft[1:])) if T > 1 else 0.0,
        "per_frame": {"psnr": [num(v) for v in psnr], "ssim": [float(v) for v in ssim],
                      "flicker_ref": [num(v) for v in fr], "flicker_test": [num(v) for v in ft]},
    }
    out["flicker_delta_mean"] = out["flicker_test_mean"] - out["flicker_ref_mean"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
