"""Modified non-local operator of CISR-PSI (paper Eq. 9-10, Fig. 4a)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from napari_cisr.model.precision import full_precision

#: Elements of the largest intermediate tensor of one band; bounds the operator's memory.
_BAND_BUDGET = 24_000_000
#: Added to h² so that a collapsed bandwidth cannot divide by zero.
_BANDWIDTH_EPS = 1e-4
#: Below this total kept weight, every candidate of a pixel was masked: fall back to the
#: unmasked weights rather than dividing by ~0.
_MIN_KEPT = 1e-6

#: How the operator loops over the (2r+1)² window offsets; see :class:`BlockingAwareNonLocal`.
Strategy = Literal["auto", "streamed", "batched"]


def _patch_sum(values: torch.Tensor, patch: int) -> torch.Tensor:
    """Sum over each ``patch``×``patch`` window (valid positions only), by shifted slices.

    Separable adds of slices: on one channel, much faster on the CPU than ``avg_pool2d``.
    """
    rows = values[:, :, : values.shape[2] - patch + 1]
    for i in range(1, patch):
        rows = rows + values[:, :, i : values.shape[2] - patch + 1 + i]
    out = rows[..., : values.shape[3] - patch + 1]
    for i in range(1, patch):
        out = out + rows[..., i : values.shape[3] - patch + 1 + i]
    return out


class _Band(NamedTuple):
    """Output rows [y0, y1) of one call, and the inputs that every band of the call shares.

    ``z_pad`` and ``keep_pad`` are padded by r (zeros: an out-of-image candidate is never kept,
    so its z is never used), ``g_pad`` by r + patch // 2 (replicated: similarities compare
    whole patches); ``neg_inv_h2`` = −1 / (h² + ε) holds this band's rows only, B×1×(y1−y0)×W.
    A NamedTuple rather than a dataclass, so that ``torch.compile`` traces the same graph as
    with plain arguments.
    """

    z_pad: torch.Tensor
    g_pad: torch.Tensor
    keep_pad: torch.Tensor
    neg_inv_h2: torch.Tensor
    y0: int
    y1: int
    width: int


class BlockingAwareNonLocal(nn.Module):
    """Non-local means on z whose weights come from the auxiliary image g, masked by d(z).

    ``u(m) = Σ_n w(m, n) z(n)`` with
    ``w(m, n) = exp(-||g(m) - g(n)||² / h(m)²) · keep(n) / S(m)`` (Eq. 9-10), where patches are
    ``patch``×``patch``, candidates n lie in a (2r+1)² window around m (r = ``search_radius``),
    h is estimated per pixel from g by conv3x3(→64)-ReLU-conv1x1(→1) (softplus keeps it
    positive), and ``keep`` = 1 − d(z) averaged over the candidate's patch, as in the authors'
    code. A candidate whose whole patch lies on blocking edges gets weight exactly 0.

    The window is bounded so that time and memory grow linearly with the image; rows are
    processed in bands so that peak memory does not depend on the image height either.

    Two ways of evaluating it give the same numbers (``tests/test_model.py``): *streamed*, one
    window offset at a time on shifted slices (about 12 small operations per offset, nothing
    (2r+1)² times the image ever stored), and *batched*, every offset of a band at once with
    ``F.unfold`` (about 20 operations per band on tensors (2r+1)²·C times the band). Streamed is
    2.9-4.9x faster for CPU inference (``benchmarks/nonlocal_speed.py``); on a GPU the
    operator's many tiny kernels make a training step bound by the host's per-operation
    dispatch, which batched removes, and batched has no host synchronisation (its all-masked
    fallback is a ``torch.where``, not a branch). ``strategy="auto"`` picks batched on CUDA and
    streamed elsewhere.

    Parameters
    ----------
    channels : int
        Channels of z and g.
    search_radius : int
        r: candidates come from a (2r+1)×(2r+1) window.
    patch : int
        Side of the compared patches (odd).
    fixed_bandwidth : float or None
        If given, h is this constant on the 0-255 scale (ablation) instead of the learned map.
    strategy : {"auto", "streamed", "batched"}
        How offsets are looped over (same result); an attribute, so it can be changed on a
        built network. Not part of the weights.
    """

    def __init__(
        self,
        channels: int = 3,
        search_radius: int = 7,
        patch: int = 3,
        fixed_bandwidth: float | None = None,
        hidden: int = 64,
        strategy: Strategy = "auto",
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.search_radius = search_radius
        self.patch = patch
        self.fixed_bandwidth = fixed_bandwidth
        if fixed_bandwidth is None:
            self.bandwidth = nn.Sequential(
                nn.Conv2d(channels, hidden, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(hidden, 1, 1),
            )
            # Start at h ≈ 0.1 (≈ 25 on the 0-255 scale), a typical NLM bandwidth.
            nn.init.zeros_(self.bandwidth[2].weight)
            nn.init.constant_(self.bandwidth[2].bias, -2.25)

    @property
    def candidates(self) -> int:
        """Number of candidates per pixel, (2r+1)²."""
        return (2 * self.search_radius + 1) ** 2

    def bandwidth_map(self, g: torch.Tensor) -> torch.Tensor:
        """h: B×1×H×W, positive, on the [0, 1] intensity scale."""
        if self.fixed_bandwidth is not None:
            return g.new_full((g.shape[0], 1, *g.shape[2:]), self.fixed_bandwidth / 255.0)
        with full_precision(g):
            return F.softplus(self.bandwidth(g.to(self.bandwidth[0].weight.dtype)))

    def forward(
        self, z: torch.Tensor, g: torch.Tensor, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Apply the operator.

        Parameters
        ----------
        z : Tensor
            B×C×H×W, the compressed input; candidates are taken from it only.
        g : Tensor
            B×C×H×W, the auxiliary image on which similarity is measured.
        keep : Tensor, optional
            B×1×H×W in [0, 1], 1 − d(z) per pixel; ``None`` keeps every candidate.

        Returns
        -------
        Tensor
            u, B×C×H×W.
        """
        return self._run(z, g, keep, want_weights=False)

    def similarity_weights(self, g: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The weights w(m, n) as B×K×H×W (K = (2r+1)², row-major window offsets)."""
        return self._run(g, g, keep, want_weights=True)

    def _run(
        self, z: torch.Tensor, g: torch.Tensor, keep: torch.Tensor | None, want_weights: bool
    ) -> torch.Tensor:
        batch, channels, height, width = z.shape
        r, p = self.search_radius, self.patch // 2
        window = 2 * r + 1
        if keep is None:
            keep = z.new_ones(batch, 1, height, width)
        # Average 1 − d over each candidate's patch (zero padding: outside the image is not kept).
        keep = F.avg_pool2d(keep, self.patch, stride=1, padding=p, count_include_pad=False)
        h = self.bandwidth_map(g)
        g_pad = F.pad(g, [r + p] * 4, mode="replicate")
        z_pad = F.pad(z, [r] * 4)  # values never used: keep is 0 there
        keep_pad = F.pad(keep, [r] * 4, value=0.0)  # out-of-image candidates are never kept

        neg_inv_h2 = -1.0 / (h.square() + _BANDWIDTH_EPS)
        if want_weights:
            return self._weights(_Band(z_pad, g_pad, keep_pad, neg_inv_h2, 0, height, width))
        if self._batched(z.device):
            # Every offset of a band at once: the largest tensor is B·C·(2r+1)² per band pixel.
            row_elems = batch * channels * window * window * (width + 2 * p)
            band_fn = self._band_batched
        else:
            # One offset at a time: nothing of size (2r+1)² per pixel is ever held.
            row_elems = batch * 8 * channels * (width + 2 * p)
            band_fn = self._band_streamed
        band = max(1, min(height, _BAND_BUDGET // max(row_elems, 1)))
        outputs = []
        for y0 in range(0, height, band):
            y1 = min(height, y0 + band)
            rows_h = neg_inv_h2[:, :, y0:y1]
            outputs.append(band_fn(_Band(z_pad, g_pad, keep_pad, rows_h, y0, y1, width)))
        return torch.cat(outputs, dim=2)

    def _batched(self, device: torch.device) -> bool:
        if self.strategy not in ("auto", "streamed", "batched"):
            raise ValueError(
                f"unknown non-local strategy {self.strategy!r}; "
                "choose 'auto', 'streamed' or 'batched'"
            )
        return self.strategy == "batched" or (self.strategy == "auto" and device.type == "cuda")

    def _exponent_terms(self, band: _Band) -> Iterator[tuple[int, int, torch.Tensor]]:
        """Yield (dy, dx, exp(-||g(m) - g(m+δ)||² / h(m)²)) per window offset δ (row-major).

        The zero offset gives distance 0, so every logit is ≤ 0 and the largest is exactly 0:
        exp needs no max subtraction (it cannot overflow) and Σ_n exp ≥ 1.
        """
        r, p = self.search_radius, self.patch // 2
        g_pad, neg_inv_h2, y0, y1, width = band.g_pad, band.neg_inv_h2, band.y0, band.y1, band.width
        g_centre = g_pad[:, :, y0 + r : y1 + r + 2 * p, r : r + width + 2 * p]
        for dy in range(2 * r + 1):
            for dx in range(2 * r + 1):
                g_shifted = g_pad[:, :, y0 + dy : y1 + dy + 2 * p, dx : dx + width + 2 * p]
                sq = (g_centre - g_shifted).square().sum(1, keepdim=True)
                yield dy, dx, torch.exp(_patch_sum(sq, self.patch) * neg_inv_h2)

    def _batched_terms(self, band: _Band) -> tuple[torch.Tensor, torch.Tensor]:
        """(exp terms, kept fraction) of every offset at once, each B×K×(y1−y0)×W.

        ``F.unfold`` with a (2r+1)² kernel over the padded rows gives, at each position, the
        (2r+1)² shifted values in the row-major offset order of :meth:`_exponent_terms`.
        """
        r, p = self.search_radius, self.patch // 2
        window = 2 * r + 1
        g_pad, neg_inv_h2, y0, y1, width = band.g_pad, band.neg_inv_h2, band.y0, band.y1, band.width
        batch, channels = g_pad.shape[:2]
        rows = y1 - y0
        g_centre = g_pad[:, :, y0 + r : y1 + r + 2 * p, r : r + width + 2 * p]
        g_shifted = F.unfold(g_pad[:, :, y0 : y1 + 2 * r + 2 * p], window).view(
            batch, channels, window * window, rows + 2 * p, width + 2 * p
        )
        sq = (g_shifted - g_centre.unsqueeze(2)).square().sum(1)
        e = torch.exp(_patch_sum(sq, self.patch) * neg_inv_h2)
        kept = F.unfold(band.keep_pad[:, :, y0 : y1 + 2 * r], window)
        return e, kept.view(batch, window * window, rows, width)

    def _band_batched(self, band: _Band) -> torch.Tensor:
        """u for rows [y0, y1), every offset at once: Σ_n w(m, n) z(n) with the normalised
        weights of :meth:`_weights`, whose all-masked fallback is a ``torch.where`` over every
        pixel rather than a branch, so nothing synchronises with the host (a CUDA step keeps
        queueing)."""
        window = 2 * self.search_radius + 1
        batch, channels = band.z_pad.shape[:2]
        weights = self._weights(band)
        z_n = F.unfold(band.z_pad[:, :, band.y0 : band.y1 + window - 1], window).view(
            batch, channels, window * window, band.y1 - band.y0, band.width
        )
        return (weights.unsqueeze(1) * z_n).sum(2)

    def _band_streamed(self, band: _Band) -> torch.Tensor:
        """u for rows [y0, y1): Σ_n e(n)·keep(n)·z(n) / Σ_n e(n)·keep(n), e = exp(logit).

        This is softmax, mask and renormalisation (Eq. 10) with the normalisation applied once to
        the C-channel sum instead of to every weight: the same numbers, without materialising
        the (2r+1)² weights per pixel (faster, and memory no longer scales with r²:
        benchmarks/nonlocal_speed.py).
        """
        z_pad, keep_pad, y0, y1, width = band.z_pad, band.keep_pad, band.y0, band.y1, band.width
        e_sum = kept_sum = numerator = None
        for dy, dx, e in self._exponent_terms(band):
            z_n = z_pad[:, :, y0 + dy : y1 + dy, dx : dx + width]
            e_kept = e * keep_pad[:, :, y0 + dy : y1 + dy, dx : dx + width]
            if numerator is None:
                e_sum, kept_sum, numerator = e, e_kept, e_kept * z_n
            else:
                e_sum = e_sum + e
                kept_sum = kept_sum + e_kept
                numerator = numerator + e_kept * z_n
        usable = kept_sum > _MIN_KEPT * e_sum
        u = numerator / kept_sum.clamp_min(_MIN_KEPT * e_sum)
        if bool(usable.all()):
            return u
        # Pixels whose every candidate is masked fall back to the unmasked weights (rare: a
        # second pass only when it happens).
        unmasked = None
        for dy, dx, e in self._exponent_terms(band):
            term = e * z_pad[:, :, y0 + dy : y1 + dy, dx : dx + width]
            unmasked = term if unmasked is None else unmasked + term
        return torch.where(usable, u, unmasked / e_sum)

    def _weights(self, band: _Band) -> torch.Tensor:
        """The normalised weights w(m, n) of rows [y0, y1) as B×K×(y1−y0)×W (memory ∝ K)."""
        e, kept = self._batched_terms(band)
        e_sum = e.sum(1, keepdim=True)
        masked = e * kept
        kept_sum = masked.sum(1, keepdim=True)
        usable = kept_sum > _MIN_KEPT * e_sum
        return torch.where(usable, masked / kept_sum.clamp_min(_MIN_KEPT * e_sum), e / e_sum)
