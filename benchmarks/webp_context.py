"""Does the network treat a photo's WebP like the crops it was trained on? Gain over bicubic
when z is compressed whole (as a user's image is) vs in independent T×T LR tiles (as training
compressed each patch before ``compress_size``: T = 64).

JPEG codes every 8×8 block on its own (only the decoder's chroma upsampling looks across
block edges, so tiles differ from the whole along their borders): its rows are the control.
libwebp makes per-image choices (segment quantisers, loop-filter strength) from the whole
picture, so a 64² crop is coded differently from the same pixels in a photo; whether a network
trained on 64² encodings loses by it is what running this on networks trained both ways tells
(docs/models.md, x2 stage 22). For each held-out mate-backgrounds photo (the skimage ones are
smaller than a few tiles) the LR image is cut to a multiple of T, compressed both ways,
super-resolved whole by ``--model``, and scored against bicubic of the same z.

    cd benchmarks && python webp_context.py --scales 2 --tiles 64 \
        --json results/webp-context-lite-x2.json
"""

from __future__ import annotations

import json

import numpy as np
from precision import HELDOUT, heldout_parser

from napari_cisr.degrade import (
    TRAIN_CONFIGS,
    bicubic_downscale,
    bicubic_upscale,
    compress,
    config_name,
)
from napari_cisr.inference import super_resolve
from napari_cisr.metrics import psnr_y
from napari_cisr.train.data import load_clean_photo

PHOTOS = [p for p in HELDOUT if "mate" in str(p)]


def compress_in_tiles(lr: np.ndarray, tile: int, codec: str, quality: int) -> np.ndarray:
    """Every tile×tile block of ``lr`` (uint8, sides multiples of ``tile``) compressed alone."""
    out = np.empty_like(lr)
    for top in range(0, lr.shape[0], tile):
        for left in range(0, lr.shape[1], tile):
            block = np.ascontiguousarray(lr[top : top + tile, left : left + tile])
            out[top : top + tile, left : left + tile] = compress(block, codec, quality)
    return out


def score(scale: int, tile: int, model: str) -> dict:
    """Per configuration: mean gain (dB) with z compressed whole and in tiles, over PHOTOS."""
    rows: dict[str, dict[str, list[float]]] = {}
    for path in PHOTOS:
        truth = load_clean_photo(path, 3)
        lr = bicubic_downscale(truth, scale)
        height, width = (lr.shape[0] // tile) * tile, (lr.shape[1] // tile) * tile
        lr = np.ascontiguousarray(lr[:height, :width])
        truth = truth[: height * scale, : width * scale]
        for codec, quality in TRAIN_CONFIGS:
            row = rows.setdefault(config_name(codec, quality), {"whole": [], "tiles": []})
            whole = compress(lr, codec, quality)
            tiled = compress_in_tiles(lr, tile, codec, quality)
            for kind, z in (("whole", whole), ("tiles", tiled)):
                baseline = psnr_y(bicubic_upscale(z, scale), truth, shave=scale)
                out = super_resolve(z, scale=scale, model=model)
                row[kind].append(psnr_y(out, truth, shave=scale) - baseline)
    return {
        label: {kind: float(np.mean(values)) for kind, values in row.items()}
        for label, row in rows.items()
    }


def main() -> None:
    parser = heldout_parser(__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, nargs="+", default=[64])
    args = parser.parse_args()
    results = {}
    for scale in args.scales:
        for tile in args.tiles:
            table = score(scale, tile, args.model)
            results[f"x{scale}-tile{tile}"] = table
            print(f"x{scale}, {args.model}, tiles of {tile}² LR px: gain whole / tiles (dB)")
            for label, row in table.items():
                print(f"  {label}: {row['whole']:+.3f} / {row['tiles']:+.3f}")
    if args.json:
        photos = [str(p) for p in PHOTOS]
        payload = {"model": args.model, "photos": photos, "results": results}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
