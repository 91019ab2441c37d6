"""How a value the caller passed is shown in an error message.

Error messages quote the offending value with ``repr`` so that a string and a number are told
apart (``'5'`` against ``5``). A NumPy scalar's ``repr`` is ``np.int64(5)`` under NumPy 2, which
reads as an internal detail: :func:`shown` quotes its Python value instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["shown"]


def shown(value) -> str:
    """``repr`` of ``value``, with a NumPy scalar first turned into its Python value
    (``np.int64(5)`` is shown as ``5``, ``np.str_('a')`` as ``'a'``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)
