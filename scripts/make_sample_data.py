"""Regenerate the sample images shipped in ``src/napari_cisr/data/``.

Source: scikit-image's ``rocket.jpg`` (launch of DSCOVR on a Falcon 9, photographed by SpaceX and
released into the public domain -- see ``skimage.data.rocket.__doc__``). scikit-image is only
needed to run this script (it is in the ``train`` extra), not to use the package.

Steps (all resampling is PIL ``BICUBIC``, which is antialiased when downscaling):

1. downscale the 640×427 photo 2.5× to 256 px wide, cropped to an even height (256×170), which
   removes the source's own JPEG artefacts and camera noise: ``sample_hr.png``, the clean
   ground truth. (3× would give a 213-px photo; 2.5× keeps the long side at 256 px while the
   PNG stays under 60 KB -- photos of coffee or the astronaut at 256 px are ~100 KB.)
2. downscale that 2× to 128×85 and compress it:
   ``sample_x2_q15.jpg`` (JPEG quality 15, 4:2:0) and ``sample_x2_q10.webp`` (WebP quality 10).
   85 rows is deliberately not a multiple of 8: the last block row is partial.

Run from the repository root::

    python scripts/make_sample_data.py
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image

DATA = Path(__file__).resolve().parents[1] / "src" / "napari_cisr" / "data"
HR_WIDTH = 256
SR_FACTOR = 2


def _downscale(img: Image.Image, factor: int) -> Image.Image:
    w, h = img.size
    return img.resize((w // factor, h // factor), Image.Resampling.BICUBIC)


def main(argv: list[str] | None = None) -> None:
    """Write ``sample_hr.png``, ``sample_x2_q15.jpg`` and ``sample_x2_q10.webp``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA, help="output folder")
    args = parser.parse_args(argv)

    from skimage import data

    photo = Image.fromarray(data.rocket())
    w, h = photo.size
    hr = photo.resize((HR_WIDTH, round(h * HR_WIDTH / w)), Image.Resampling.BICUBIC)
    hr = hr.crop((0, 0, hr.width - hr.width % SR_FACTOR, hr.height - hr.height % SR_FACTOR))
    lr = _downscale(hr, SR_FACTOR)

    args.out.mkdir(parents=True, exist_ok=True)
    outputs = {
        "sample_hr.png": (hr, {"format": "PNG", "optimize": True}),
        "sample_x2_q15.jpg": (lr, {"format": "JPEG", "quality": 15, "subsampling": "4:2:0"}),
        "sample_x2_q10.webp": (lr, {"format": "WEBP", "quality": 10, "method": 6}),
    }
    for name, (img, kwargs) in outputs.items():
        buf = io.BytesIO()
        img.save(buf, **kwargs)
        (args.out / name).write_bytes(buf.getvalue())
        print(f"{name}: {img.width}×{img.height}, {len(buf.getvalue()) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
