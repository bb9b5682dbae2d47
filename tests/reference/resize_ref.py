#!/usr/bin/env python3
"""Reference for hb_image_resize / hb_image_cover_crop: PIL's Lanczos resize and the Wan I2V
preprocessing (resize to cover, centre crop). Usage:
  resize_ref.py resize IN.png W H OUT.png
  resize_ref.py cover  IN.png W H OUT.png
  resize_ref.py best   W H DW DH AREA      (prints "ow oh", Wan's best_output_size)
Exit code 77 when PIL is missing."""
import sys

try:
    from PIL import Image
except ImportError as e:  # pragma: no cover
    print(f"missing python module: {e}", file=sys.stderr)
    sys.exit(77)


def best_output_size(w, h, dw, dh, expected_area):
    ratio = w / h
    ow = (expected_area * ratio) ** 0.5
    oh = expected_area / ow
    ow1 = int(ow // dw * dw)
    oh1 = int(expected_area / ow1 // dh * dh)
    ratio1 = ow1 / oh1
    oh2 = int(oh // dh * dh)
    ow2 = int(expected_area / oh2 // dw * dw)
    ratio2 = ow2 / oh2
    if max(ratio / ratio1, ratio1 / ratio) < max(ratio / ratio2, ratio2 / ratio):
        return ow1, oh1
    return ow2, oh2


def main():
    mode = sys.argv[1]
    if mode == "best":
        w, h, dw, dh, area = map(int, sys.argv[2:7])
        print(*best_output_size(w, h, dw, dh, area))
        return
    img = Image.open(sys.argv[2]).convert("RGB")
    ow, oh = int(sys.argv[3]), int(sys.argv[4])
    if mode == "resize":
        out = img.resize((ow, oh), Image.LANCZOS)
    else:
        iw, ih = img.width, img.height
        scale = max(ow / iw, oh / ih)
        img = img.resize((round(iw * scale), round(ih * scale)), Image.LANCZOS)
        x1 = (img.width - ow) // 2
        y1 = (img.height - oh) // 2
        out = img.crop((x1, y1, x1 + ow, y1 + oh))
    out.save(sys.argv[5])


if __name__ == "__main__":
    main()
