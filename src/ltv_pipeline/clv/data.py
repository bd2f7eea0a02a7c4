"""The customer columns the CLV models read: checks, and identical customers grouped.

Conventions, all as in the papers (Fader, Hardie & Lee 2005) and in ``lifetimes``:

* ``frequency`` x is the number of *repeat* purchases (the first purchase is not counted),
* ``recency`` t_x is the time of the last purchase measured from the first one (0 when x = 0),
* ``T`` is the time from the first purchase to the end of observation,
* ``monetary_value`` is the mean value of the repeat transactions (ignored when x = 0).

Recency and T must be in one time unit of the caller's choosing; the fitted ``alpha`` and every
time passed to a prediction are then in that unit too. Everything in ``clv`` is plain
numpy/scipy on arrays of any origin (pandas only factorizes columns), so that it runs inside or
outside an orchestrator.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

ArrayLike = npt.ArrayLike


FloatArray = npt.NDArray[np.float64]


#: Days per calendar month on average (365.25 / 12), used to turn months into model time.
DAYS_PER_MONTH = 30.4375


# Spend is undefined without repeat purchases, so NaN is accepted there; rows where it is used
# are checked where it is used.
_NAN_ALLOWED = frozenset({"monetary_value"})


def as_float(name: str, values: ArrayLike) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if name not in _NAN_ALLOWED and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


def check_frequency(frequency: FloatArray) -> None:
    if np.any(frequency < 0):
        raise ValueError("frequency has negative values")
    if np.any(frequency != np.round(frequency)):
        raise ValueError("frequency must be whole numbers of repeat purchases")


def check_rft(frequency: FloatArray, recency: FloatArray, T: FloatArray) -> None:
    """The constraints that make (x, t_x, T) a possible purchase history."""
    check_frequency(frequency)
    if np.any(recency < 0):
        raise ValueError("recency has negative values")
    if np.any(T < 0):
        raise ValueError("T has negative values")
    if np.any(recency > T):
        raise ValueError("recency is larger than T for some customers")
    repeat = frequency > 0
    if np.any(recency[repeat] <= 0):
        raise ValueError("recency must be > 0 for customers with repeat purchases (frequency > 0)")
    if np.any(recency[~repeat] != 0):
        raise ValueError("recency must be 0 for customers without repeat purchases")


def fit_columns(**arrays: ArrayLike) -> list[FloatArray]:
    """1-D float columns of one length, as a fit needs (a prediction broadcasts instead)."""
    cols = [as_float(name, values) for name, values in arrays.items()]
    for name, col in zip(arrays, cols, strict=True):
        if col.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {col.shape}")
    lengths = {name: len(col) for name, col in zip(arrays, cols, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs have different lengths: {lengths}")
    if not cols[0].size:
        raise ValueError("no customers given")
    return cols


def broadcast(**arrays: ArrayLike) -> list[FloatArray]:
    cols = [as_float(name, values) for name, values in arrays.items()]
    try:
        return [np.array(c) for c in np.broadcast_arrays(*cols)]
    except ValueError:
        shapes = {name: np.shape(c) for name, c in zip(arrays, cols, strict=True)}
        raise ValueError(f"input shapes do not broadcast together: {shapes}") from None


def row_weights(weights: ArrayLike | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = as_float("weights", weights)
    if w.shape != (n,):
        raise ValueError(f"weights must have one value per row ({n}), got shape {w.shape}")
    if np.any(w < 0):
        raise ValueError("weights has negative values")
    if not w.sum() > 0:
        raise ValueError("weights sum to zero")
    return w


def factorize(col: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """The distinct values of a finite column (ascending) and each row's index into them.

    pandas' hash-based factorize: about 10 ns a row, where ``np.unique(...,
    return_inverse=True)`` argsorts (6x slower on millions of rows).
    """
    codes, values = pd.factorize(col, sort=True)
    return np.asarray(values, dtype=np.float64), codes.astype(np.intp, copy=False)


def unique_rows(*columns: FloatArray) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index of one row per distinct tuple of ``columns`` (lexicographic order) and the map
    from each row to its distinct tuple.

    Each column is factorized on its own and the codes are combined into one integer key in
    mixed radix, whose order is the lexicographic order of the tuples; the key is compacted
    through a dense table when that is small, else by a sort.
    """
    found = unique_rows_if_few(*columns, at_most=1.0)
    assert found is not None
    return found


#: The mixed-radix key of :func:`unique_rows` stays below this, so it never overflows int64.
KEY_LIMIT = 2**62


def unique_rows_if_few(
    *columns: FloatArray, at_most: float
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]] | None:
    """:func:`unique_rows`, or None as soon as one column alone has more than ``at_most``
    times as many distinct values as rows: then grouping would not pay for itself (times
    from timestamps are all distinct)."""
    n = len(columns[0])
    if at_most < 1.0:  # counted on a sorted copy first: numpy's SIMD sort beats hashing
        for col in columns:
            ordered = np.sort(col)
            if np.count_nonzero(ordered[1:] != ordered[:-1]) + 1 > at_most * n:
                return None
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for col in columns:
        values, codes = factorize(col)
        if size * len(values) > KEY_LIMIT:  # renumber the tuples so far (at most n) first
            prefixes, key = np.unique(key, return_inverse=True)
            size = len(prefixes)
        size *= len(values)
        key = key * len(values) + codes
    if size <= 4 * n + 1024:
        present = np.zeros(size, dtype=bool)
        present[key] = True
        slot = np.cumsum(present) - 1
        inverse = slot[key]
        first = np.empty(int(slot[-1]) + 1 if size else 0, dtype=np.intp)
        first[inverse] = np.arange(n)
        return first, inverse
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first, inverse


def group_customers(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Collapse customers with identical (frequency, recency, T) into weighted rows.

    The likelihood depends on a customer only through these three numbers, so a fit on the
    distinct rows with their counts as ``weights`` is the same fit at a fraction of the cost
    once recency and T are on a coarse grid (whole days or weeks, as a warehouse delivers them).

    Returns
    -------
    frequency, recency, T, weights
        The distinct rows in lexicographic order and how many customers share each.
    """
    x, tx, t = fit_columns(frequency=frequency, recency=recency, T=T)
    check_rft(x, tx, t)
    first, inverse = unique_rows(x, tx, t)
    counts = np.bincount(inverse, minlength=len(first)).astype(np.int64)
    return x[first], tx[first], t[first], counts


def check_params(names: str, theta: ArrayLike) -> FloatArray:
    values = np.asarray(theta, dtype=float)
    k = len(names.split())
    if values.shape != (k,) or not np.all((values > 0) & np.isfinite(values)):
        raise ValueError(f"parameters ({names}) must be {k} finite positive numbers")
    return values
