"""On-the-fly, seeded training pairs (paper Algorithm 1).

HR patches are cut from clean photos; LR = antialiased bicubic downscale; z = LR round-tripped
through one of the ten JPEG/WebP configurations. Each patch is cut from a larger compressed LR
region (``compress_size``) at a random position, so the network sees every position of the
8×8 / 16×16 grid, and the codec sees an image about the size of a real one: the paper compresses
whole LR images, and libwebp's per-image choices (segment quantisers, loop-filter strength) on a
64² image differ from those on a photo (docs/models.md, *x2 stage 22*, measures what that did).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_cisr.degrade import TRAIN_CONFIGS, Codec, Degradation, bicubic_downscale, mixture

log = logging.getLogger(__name__)

#: Training photo files (TGA: grub2-splashimages ships its photos so).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".tga")
#: Extra LR pixels compressed around each patch at least, so that its grid phase can be drawn
#: at random.
_GRID_MARGIN = 16
#: LR side of the region compressed around each patch, by default (see ``PatchSampler``).
COMPRESS_SIZE = 192


def load_clean_photo(path: str | Path, downscale: int = 3) -> np.ndarray:
    """Read a photo and downscale it to a clean ground truth.

    Source photos are themselves JPEGs (quality 75-100 here); an antialiased bicubic downscale
    by ``downscale`` averages their 8×8 artefacts away (docs/models.md measures how much).

    Returns
    -------
    ndarray
        uint8 H×W×3.
    """
    return _downscaled(_read_rgb(path), downscale)


def _read_rgb(path: str | Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _downscaled(rgb: np.ndarray, factor: int) -> np.ndarray:
    return bicubic_downscale(rgb, factor) if factor > 1 else rgb


def load_training_photos(
    paths: Sequence[str | Path], downscales: Sequence[int] = (3,)
) -> list[np.ndarray]:
    """Every photo at every downscale factor: clean ground truths for :class:`PatchSampler`.

    Several factors give the same scenes at several scales (more varied patches from few
    photos); the sampler draws in proportion to area, so each factor weighs by its pixels.
    """
    photos = []
    for path in paths:
        rgb = _read_rgb(path)  # once per photo, however many factors
        photos += [_downscaled(rgb, factor) for factor in downscales]
    return photos


def list_photos(folders: Sequence[str | Path], exclude: Sequence[str] = ()) -> list[Path]:
    """Image files in ``folders`` (sorted), minus those whose stem is in ``exclude``."""
    excluded = {name.lower() for name in exclude}
    photos = []
    for folder in folders:
        folder = Path(folder)
        files = [folder] if folder.is_file() else sorted(folder.iterdir())
        photos += [
            f
            for f in files
            if f.suffix.lower() in IMAGE_SUFFIXES and f.stem.lower() not in excluded
        ]
    return photos


def to_tensor(images: Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 H×W×3 images → float B×3×H×W in [0, 1]."""
    batch = np.stack(images).astype(np.float32) / 255.0
    return torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()


def compressed_region(patch: int, compress_size: int = COMPRESS_SIZE) -> int:
    """LR side of the region compressed around each patch: ``compress_size``, or the patch and
    its grid margin if that is larger (a photo smaller than it gives its short side)."""
    return max(compress_size, patch + _GRID_MARGIN)


def _area_weights(images: Sequence[np.ndarray]) -> np.ndarray:
    areas = np.array([image.shape[0] * image.shape[1] for image in images], dtype=np.float64)
    return areas / areas.sum()


class PatchSampler:
    """Random (z, y, x) training triples, reproducible from ``seed``.

    Parameters
    ----------
    photos : sequence of ndarray
        Clean HR photos, uint8 H×W×3, each at least (patch + 16)·scale on its short side.
    scale : int
        Upscaling factor s.
    patch : int
        LR patch side (48 in the paper).
    configs : sequence of (codec, quality)
        Compression configurations drawn uniformly.
    seed : int
    compress_size : int
        LR side of the square region compressed around each patch: at least patch + 16 (the
        grid margin), at most what the photo holds. 64 reproduces runs before this option.
    degradations : sequence of str
        Names in :data:`~napari_cisr.degrade.DEGRADATIONS` that make each patch's LR and z
        (kernel, chroma, double compression); drawn uniformly, then a member of the name.
    synthetic : sequence of ndarray
        Synthetic clean HR images (uint8 H×W×3, e.g. ``train.synthetic.dead_leaves_set``)
        that ``synthetic_share`` of the patches come from.
    synthetic_share : float
        Share of the patches cut from ``synthetic``, in [0, 1); the rest from ``photos``.
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        scale: int,
        patch: int = 48,
        configs: Sequence[tuple[Codec, int]] = TRAIN_CONFIGS,
        seed: int = 0,
        compress_size: int = COMPRESS_SIZE,
        degradations: Sequence[str] = ("paper",),
        synthetic: Sequence[np.ndarray] = (),
        synthetic_share: float = 0.0,
    ) -> None:
        need = (patch + _GRID_MARGIN) * scale
        self.photos = [p for p in photos if min(p.shape[:2]) >= need]
        if not self.photos:
            raise ValueError(f"no training photo is at least {need} px on its short side")
        if not 0 <= synthetic_share < 1 or bool(synthetic_share) != bool(len(synthetic)):
            raise ValueError(
                "synthetic_share must be in [0, 1), and above 0 exactly when synthetic images "
                f"are given; got {synthetic_share} with {len(synthetic)} images"
            )
        synthetic = [image for image in synthetic if min(image.shape[:2]) >= need]
        if synthetic_share and not synthetic:
            raise ValueError(f"no synthetic image is at least {need} px on its short side")
        self.scale, self.patch, self.configs = scale, patch, list(configs)
        self.compress_size = compressed_region(patch, compress_size)
        self.rng = np.random.default_rng(seed)
        self.degradations = [mixture(name) for name in degradations]
        # Sample photos in proportion to their area, so every pixel is equally likely; the
        # synthetic images likewise among themselves, with synthetic_share of the draws.
        self.photo_probs = _area_weights(self.photos)
        if synthetic:
            self.photos += synthetic
            self.photo_probs = np.concatenate(
                [
                    self.photo_probs * (1 - synthetic_share),
                    _area_weights(synthetic) * synthetic_share,
                ]
            )

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One (z, y, x): uint8 LR compressed, LR clean (patch×patch×3), HR (s·patch)²×3."""
        rng, s, patch = self.rng, self.scale, self.patch
        photo = self.photos[rng.choice(len(self.photos), p=self.photo_probs)]
        region = min(self.compress_size, min(photo.shape[:2]) // s)
        big = region * s
        top = rng.integers(0, photo.shape[0] - big + 1)
        left = rng.integers(0, photo.shape[1] - big + 1)
        hr = photo[top : top + big, left : left + big]
        hr = np.rot90(hr, k=rng.integers(4))
        if rng.integers(2):
            hr = hr[:, ::-1]
        hr = np.ascontiguousarray(hr)
        degradation = self._draw_degradation()
        lr = degradation.downscale(hr, s)
        codec, quality = self.configs[rng.integers(len(self.configs))]
        compressed = degradation.compress(lr, codec, quality)
        dy, dx = rng.integers(0, region - patch + 1, size=2)
        window = (slice(dy, dy + patch), slice(dx, dx + patch))
        hr_window = (slice(dy * s, (dy + patch) * s), slice(dx * s, (dx + patch) * s))
        return compressed[window], lr[window], hr[hr_window]

    def _draw_degradation(self) -> Degradation:
        """A name uniformly, then one of its members: ["paper", "realistic"] is half the
        paper's. A single degradation draws nothing, so runs before the option replay."""
        if len(self.degradations) == 1 and len(self.degradations[0]) == 1:
            return self.degradations[0][0]
        members = self.degradations[self.rng.integers(len(self.degradations))]
        return members[self.rng.integers(len(members))]

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(z, y, x) float tensors in [0, 1]: B×3×P×P, B×3×P×P, B×3×sP×sP."""
        triples = [self.sample() for _ in range(size)]
        return tuple(to_tensor([t[i] for t in triples]) for i in range(3))  # type: ignore[return-value]


class PatchStream(torch.utils.data.IterableDataset):
    """Endless (z, y, x) batches drawn by DataLoader worker processes.

    Worker ``k`` of ``n`` draws from its own :class:`PatchSampler`, seeded from (``seed``, k);
    a ``DataLoader(..., batch_size=None)`` takes the workers' batches in turn, so the stream is
    reproducible for a given ``seed`` and number of workers. Used when one process cannot draw
    and compress patches as fast as the device consumes them (a GPU).
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        scale: int,
        patch: int,
        batch: int,
        seed: int,
        compress_size: int = COMPRESS_SIZE,
        degradations: Sequence[str] = ("paper",),
        synthetic: Sequence[np.ndarray] = (),
        synthetic_share: float = 0.0,
    ) -> None:
        super().__init__()
        self.photos, self.scale, self.patch, self.batch, self.seed = (
            photos, scale, patch, batch, seed
        )  # fmt: skip
        self.compress_size, self.degradations = compress_size, tuple(degradations)
        self.synthetic, self.synthetic_share = list(synthetic), synthetic_share

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        seed = int(np.random.SeedSequence([self.seed, worker]).generate_state(1)[0])
        sampler = PatchSampler(
            self.photos,
            self.scale,
            self.patch,
            seed=seed,
            compress_size=self.compress_size,
            degradations=self.degradations,
            synthetic=self.synthetic,
            synthetic_share=self.synthetic_share,
        )
        while True:
            yield sampler.batch(self.batch)
