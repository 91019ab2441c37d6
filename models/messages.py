"""How a value the caller passed is shown in an error message.

Error messages quote the offending value with ``repr`` so that a string and a number are told
apart (``'5'`` against ``5``). A NumPy scalar's ``repr`` is ``np.int64(5)`` under NumPy 2, which
reads as an internal detail: :func:`shown` quotes it as the user would write it instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shown"]


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
