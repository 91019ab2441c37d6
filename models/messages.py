"""How a value the caller passed is shown in an error message.

Error messages quote the offending value with ``repr`` so that a string and a number are told
apart (``'5'`` against ``5``). A NumPy scalar's ``repr`` is ``np.int64(5)`` under NumPy 2, which
reads as an internal detail: :func:`shown` quotes it as the user would write it instead.
:func:`require_int` is the one check of an integer argument (a count, a window, a horizon)
that the public functions use, so that each refuses the same values with the same message
(``FeatureTransform`` also reads its windows back from a stored fit's JSON, and takes an
integral float there).
"""

from __future__ import annotations

import numpy as np

__all__ = ["require_int", "shown"]


def shown(value) -> str:
    """``repr`` of ``value``, with a NumPy scalar shown as the user would write it: ``np.int64(5)``
    as ``5``, ``np.True_`` as ``True``, ``np.str_('a')`` as ``'a'``, ``np.float32(-0.1)`` as
    ``-0.1`` and a ``datetime64`` by its text (``NaT``, ``2020-01-01``)."""
    if isinstance(value, np.bool_):
        return repr(bool(value))
    if isinstance(value, np.integer):
        return repr(int(value))
    if isinstance(value, np.str_ | np.bytes_):
        return repr(value.item())
    if isinstance(value, np.generic):  # floating, complex, datetime64, timedelta64
        return str(value)
    return repr(value)


def require_int(name: str, value, minimum: int, *, allow_none: bool = False) -> int | None:
    """``value`` as a Python ``int`` if it is an integer (Python or NumPy) of at least
    ``minimum``; ``None`` unchanged if ``allow_none``.

    Booleans are refused although Python counts them as integers (``draws=True`` is a mistake,
    not one draw), and so are floats, even integral ones (``5.0``): an argument that counts
    something takes an integer. Raises ValueError naming ``name`` and showing ``value`` with
    :func:`shown`, e.g. ``draws must be an integer >= 1, got 0``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        also = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{also}, got {shown(value)}")
    return int(value)
