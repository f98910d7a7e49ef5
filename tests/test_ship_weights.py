"""The shipping rule of ``scripts/ship_weights.py``: weights are judged on the evaluations of
the inputs routed to them, so the weights for heavy compression only on the configurations
whose files :mod:`napari_cisr.compression` sends to them."""

from __future__ import annotations

from napari_cisr.compression import HEAVY_QUALITY
from repo_scripts import load_script


def _evaluation(gains: dict[str, float]) -> dict:
    return {
        "mean": {"gain": sum(gains.values()) / len(gains)},
        "configs": {label: {"gain": gain} for label, gain in gains.items()},
        "sources": {},
        "per_photo": {"a.png": {label: {"gain": gain} for label, gain in gains.items()}},
    }


def test_heavy_weights_are_judged_on_the_configurations_routed_to_them():
    ship = load_script("ship_weights")
    heavy_webp = f"webp-q{HEAVY_QUALITY['webp'] - 1}"
    general_webp = f"webp-q{HEAVY_QUALITY['webp']}"  # routed to the general weights
    gains = {"jpeg-q10": 0.4, heavy_webp: 0.2, general_webp: -1.0}
    evaluation = _evaluation(gains)
    assert abs(ship.mean_gain(evaluation) - (0.4 + 0.2 - 1.0) / 3) < 1e-12
    assert abs(ship.mean_gain(evaluation, "heavy") - 0.3) < 1e-12
    assert ship.below_bicubic(evaluation) == (1, 1)
    assert ship.below_bicubic(evaluation, "heavy") == (0, 0)

    evaluations = {"paper": evaluation, "realistic": evaluation, "light": evaluation}
    judged = ship.summary(evaluations, ship.JUDGED_HEAVY, "heavy")
    assert abs(judged["mean_judged"] - 0.3) < 1e-12
    assert judged["below_bicubic"]["light"] == (1, 1)  # not judged: every configuration
    # a stage that loses only where the general weights run passes against one that did not
    better = _evaluation({**gains, "jpeg-q10": 0.41, general_webp: -2.0})
    new = ship.summary({**evaluations, "paper": better}, ship.JUDGED_HEAVY, "heavy")
    assert ship.passes(new, judged)
    assert not ship.passes(ship.summary({**evaluations, "paper": better}, ("paper",)), judged)
