"""Display tweaks for the widget's magicgui controls, on their Qt widgets.

Kept out of :mod:`napari_cisr._widget` (which builds the controls and runs the job) because
they reach into the native Qt widgets behind magicgui: superqt's spin box hooks and Qt's size
policies.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label, SpinBox

__all__ = ["special_values", "wrap_and_elide"]


def special_values(spin: SpinBox, texts: dict[int, str]) -> None:
    """Show the values in ``texts`` (e.g. the minimum) as words instead of bare numbers.

    magicgui's spin box is superqt's ``QLargeIntSpinBox``, which has no special-value text
    (unlike ``QSpinBox``); its two display hooks are replaced on this instance. Where they are
    missing (another superqt), the tooltip alone explains the numbers.
    """
    native = spin.native
    if not (hasattr(native, "_updateEdit") and hasattr(native, "_interpret")):
        return
    values = {text: value for value, text in texts.items()}

    def update_edit() -> None:
        shown = texts.get(native.value(), str(native.value()))
        if native.lineEdit().text() != shown:
            native.lineEdit().setText(shown)

    def interpret(policy: Any) -> None:
        shown = native.lineEdit().displayText().strip()
        value = native.minimum() if shown == "" else values.get(shown)
        native._setValue(int(shown) if value is None else value, policy)

    native._updateEdit = update_edit
    native._interpret = interpret
    update_edit()


def wrap_and_elide(label: Label) -> None:
    """Let ``label`` wrap inside the dock's width and never ask for more width."""
    from qtpy.QtWidgets import QSizePolicy

    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
