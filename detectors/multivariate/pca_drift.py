"""Multivariate input drift: PCA reconstruction error and Hotelling's T^2 of all
features, numeric and categorical, against the reference.

Why this test, and why so for categorical features: the test must cost a few
µs per 20-feature event and hold its false-alarm rate at the small levels the
suite grants (around 1e-6 per test). A domain classifier (reference against
window) would need a model trained per window and a permutation or held-out
calibration per window, far over that budget. Instead the reference's joint
structure is learnt once: each categorical feature is one-hot encoded over
its most frequent labels plus "other" and "missing" columns, centred and
scaled to total variance 1 (one categorical feature weighs like one numeric,
see :mod:`detectors.multivariate.categories`), which makes PCA on the mixed
columns a multiple correspondence analysis of the categoricals joined to the
PCA of the standardised numerics. Per window it costs one matrix product for
the numeric columns and one table look-up per categorical feature.

Calibration is exact and distribution-free: each row's statistics are
compared with the same statistics of held-out reference rows by a one-sided
two-sample KS test, valid for any feature distribution (categorical rows make
the statistics discrete; KS is then conservative, never liberal).

What it sees: rows that break the reference's joint structure (a broken or
reversed correlation or association, a new mix of categories, a label or a
missing value where the reference had none), and rows that move far within
it. What it misses: a per-row statistic cannot tell whether two features
that were independent in the reference have become associated when every
combination stays as typical on its own (e.g. two uniform binary features;
with skewed marginals the new combinations shift T^2 and are seen, if less
strongly than a changed association),
and a change confined to labels beyond ``max_categories`` is only seen
through the "other" column. The per-feature tests (KS, chi-square, missing
rate, unseen labels) cover the marginals.
"""

from __future__ import annotations

import warnings
from collections.abc import Container, Mapping
from typing import Any

import numpy as np

from detectors.base import DetectorBase
from detectors.codec import FixedArrays, decode_array, encode_array
from detectors.multivariate.categories import CategoryColumns
from detectors.window.base import (
    CategoricalWindow,
    NumericWindow,
    WindowOutcome,
    require_probability,
    severity_for,
)
from detectors.window.ks import ks_distances, ks_pvalue_one_sided, sorted_median

Z_LIMIT = 1e6
# Encoded columns above which categorical features get fewer label columns:
# the fit's dense training matrix (5,000 rows at the default reference size)
# and its Gram matrix stay within ~60 MB even at 500 features.
MAX_COLUMNS = 1000
# A squared residual below this share of a row's squared length is rounding
# (the row lies in the kept components); it counts as exactly zero.
RESIDUAL_ROUNDING = 1e-9


class PCADrift(DetectorBase):
    """Multivariate input drift: PCA reconstruction error and Hotelling's T^2
    of all features against the reference.

    A change in how features move together (a broken correlation, a changed
    association between categories, a new joint mode) can leave every
    marginal distribution intact. Numeric features are standardised;
    categorical ones are one-hot encoded over their ``max_categories`` most
    frequent reference labels plus an "other" and a "missing" column, centred
    and scaled so that each weighs like one numeric feature. Principal
    components fitted on half of the reference capture its joint structure;
    rows that break it reconstruct poorly (squared prediction error, SPE), and
    rows that move within it have a large Hotelling T^2. Each statistic of the
    window's rows is compared with the same statistic of the other, held-out
    half of the reference by a one-sided KS test; the smaller p-value, doubled
    (Bonferroni), is reported, and judged by the suite with the window's other
    p-values. The effect size is the ratio of the window's median statistic to
    the reference's. Needs at least two features of any type.

    Parameters
    ----------
    variance
        Share of the reference's variance the kept components explain.
    critical_effect
        Ratio of medians at or above which a finding is critical rather than a
        warning.
    min_rows
        Rows of each reference half below which the test stays off.
    max_categories
        Labels of a categorical feature given their own column (the most
        frequent in the reference); the others share one.

    Examples
    --------
    >>> import numpy as np
    >>> from detectors.multivariate import PCADrift
    >>> from detectors.window import NumericWindow
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=2000)
    >>> pca = PCADrift()
    >>> pca.fit({"x": x, "y": x + 0.1 * rng.normal(size=2000)}, seed=0)
    >>> def window(x, y):
    ...     return {"x": NumericWindow(x), "y": NumericWindow(y)}
    >>> a = rng.normal(size=500)
    >>> same = pca.test_window(window(a, a + 0.1 * rng.normal(size=500)))
    >>> print(f"p = {same.p_value:.2f}")
    p = 0.31

    Both features keep their distribution, but now move against each other:

    >>> b = rng.normal(size=500)
    >>> broken = pca.test_window(window(b, -b + 0.1 * rng.normal(size=500)))
    >>> print(f"p = {broken.p_value:.0e}, {broken.details['statistic_kind']}, {broken.severity}")
    p = 3e-233, spe, critical

    References
    ----------
    .. [1] Jackson, J. E., & Mudholkar, G. S. (1979). Control procedures for
       residuals associated with principal component analysis.
       *Technometrics*, 21(3), 341-349.
    .. [2] Hotelling, H. (1931). The generalization of Student's ratio. *The
       Annals of Mathematical Statistics*, 2(3), 360-378.
    .. [3] Hodges, J. L. (1958). The significance probability of the Smirnov
       two-sample test. *Arkiv för Matematik*, 3(5), 469-486.
    .. [4] Greenacre, M. (2017). *Correspondence Analysis in Practice* (3rd
       ed.). Chapman & Hall/CRC (multiple correspondence analysis as PCA of
       the scaled indicator matrix).
    """

    name = "pca_drift"

    def __init__(
        self,
        variance: float = 0.9,
        critical_effect: float = 2.0,
        min_rows: int = 200,
        max_categories: int = 10,
    ) -> None:
        require_probability("variance", variance)
        if not critical_effect > 1:
            raise ValueError(
                f"critical_effect must be > 1 (a ratio of medians), got {critical_effect!r}"
            )
        if not (isinstance(max_categories, int) and max_categories >= 1):
            raise ValueError(f"max_categories must be an integer >= 1, got {max_categories!r}")
        self.variance = variance
        self.critical_effect = critical_effect
        self.min_rows = min_rows
        self.max_categories = max_categories
        self._names: list[str] = []  # numeric features, their columns first
        self._mean = np.zeros(0)
        self._std = np.zeros(0)
        self._components = np.zeros((0, 0))
        self._spread = np.zeros(0)  # std of each component's scores
        self._errors = np.zeros(0)  # held-out SPE, sorted
        self._t2 = np.zeros(0)  # held-out T^2, sorted
        self._categories: list[CategoryColumns] = []  # then each categorical's block
        self._tables: list[tuple[np.ndarray, np.ndarray]] = []  # derived: see _derive
        self._fixed = FixedArrays()  # the fitted tables' digests, for dump(stored)

    @property
    def fitted(self) -> bool:
        return self._errors.shape[0] > 0

    def _standardise(self, columns: list[np.ndarray], rows: int) -> np.ndarray:
        if not columns:
            return np.zeros((rows, 0))
        x = np.column_stack(columns).astype(np.float64, copy=False)
        with np.errstate(all="ignore"):  # in place: one matrix, not five
            x -= self._mean
            x /= self._std
        # A value a million standard deviations out is as anomalous as one that
        # overflows (producers send 1e308): clipping keeps the squares finite.
        x[~np.isfinite(x)] = 0.0
        return np.clip(x, -Z_LIMIT, Z_LIMIT, out=x)

    def _derive(self) -> None:
        """Per categorical block, by column: the scores of a row in that column
        (its centred, scaled indicator projected on the components) and the
        row's squared length within the block."""
        self._tables = []
        start = len(self._names)
        for cat in self._categories:
            stop = start + cat.width
            block = self._components[start:stop]
            w = cat.weight
            scores = w * (block - cat.shares @ block)
            sqlen = w * w * (1.0 - 2.0 * cat.shares + float(cat.shares @ cat.shares))
            self._tables.append((scores, sqlen))
            start = stop

    def _row_stats(self, z: np.ndarray, columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(SPE, T^2) of each row: ``z`` its standardised numeric values,
        ``columns`` the column each row takes in each categorical block."""
        scores = z @ self._components[: z.shape[1]]
        if not columns:  # numeric features only: the residual itself
            spe = ((z - scores @ self._components.T) ** 2).sum(axis=1)
        else:
            sqlen = (z**2).sum(axis=1)
            for (table, lengths), index in zip(self._tables, columns, strict=True):
                scores += np.take(table, index, axis=0)  # rows; faster than table[index]
                sqlen += lengths[index]
            # Components are orthonormal: the residual's squared length is the
            # row's minus its projection's (the one-hot blocks stay sparse).
            spe = sqlen - (scores**2).sum(axis=1)
            spe = np.where(spe > RESIDUAL_ROUNDING * sqlen, spe, 0.0)
        t2 = ((scores / self._spread) ** 2).sum(axis=1)
        return np.asarray(spe), np.asarray(t2)

    def _labels_per_feature(self, numeric: int, categorical: int) -> int:
        """Labels given a column per categorical feature: ``max_categories``, fewer
        (at least one) when the model has so many features that the columns
        would pass :data:`MAX_COLUMNS`."""
        if not categorical:
            return self.max_categories
        share = (MAX_COLUMNS - numeric) // categorical - 2  # "other" and "missing"
        return max(1, min(self.max_categories, share))

    def _unfit(self) -> None:
        self._errors = np.zeros(0)
        self._categories, self._tables = [], []

    def fit(
        self,
        features: dict[str, np.ndarray],
        seed: int,
        categorical: Mapping[str, CategoricalWindow] | None = None,
    ) -> None:
        """Learn the joint structure of the reference's features: ``features``
        the numeric ones, ``categorical`` the categorical ones (the reference
        sample coded by its signal's reference), row for row."""
        categorical = categorical or {}
        names, cat_names = sorted(features), sorted(categorical)
        lengths = {features[k].shape[0] for k in names} | {categorical[k].n for k in cat_names}
        if len(lengths) > 1:
            raise ValueError(f"reference features differ in length ({sorted(lengths)}); align them")
        rows = lengths.pop() if lengths else 0
        if len(names) + len(cat_names) < 2 or rows < 2 * self.min_rows:
            self._unfit()
            return
        x = np.column_stack([features[k] for k in names]) if names else np.zeros((rows, 0))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
            mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        self._names = names
        self._mean = np.where(np.isfinite(mean), mean, 0.0)
        self._std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        z = self._standardise([x[:, i] for i in range(x.shape[1])], rows)
        labels = self._labels_per_feature(len(names), len(cat_names))
        self._categories = [CategoryColumns.fit(k, categorical[k], labels) for k in cat_names]
        columns = [c.column_index(categorical[c.name]) for c in self._categories]
        order = np.random.default_rng([seed, rows]).permutation(rows)
        train, held = order[: rows // 2], order[rows // 2 :]
        # Only the training half is ever dense (rows x columns); the held-out
        # half is scored through the blocks' tables, as windows are.
        encoded = np.hstack(
            [z[train]]
            + [
                c.weight * (np.eye(c.width)[i[train]] - c.shares)
                for c, i in zip(self._categories, columns, strict=True)
            ]
        )
        encoded -= encoded.mean(axis=0)
        try:
            # The components are the eigenvectors of the columns' Gram matrix:
            # several times faster than an SVD of the tall matrix itself, and
            # only the leading components, whose precision this keeps, are used.
            eigenvalues, eigenvectors = np.linalg.eigh(encoded.T @ encoded)
            s = np.sqrt(np.clip(eigenvalues[::-1], 0.0, None))
            vt = eigenvectors[:, ::-1].T
        except np.linalg.LinAlgError:
            self._unfit()  # no structure to learn: the test stays off
            return
        explained = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
        rank = int(np.count_nonzero(s > s[0] * 1e-6)) if s[0] > 0 else 0
        # Leave at least one dimension of the reference's span to the residual.
        k = min(int(np.searchsorted(explained, self.variance)) + 1, max(rank - 1, 1))
        self._components = vt[:k].T.copy()
        spread = s[:k] / np.sqrt(max(train.shape[0] - 1, 1))
        self._spread = np.where(spread > 0, spread, 1.0)
        self._derive()
        spe, t2 = self._row_stats(z[held], [i[held] for i in columns])
        self._errors, self._t2 = np.sort(spe), np.sort(t2)

    def test_window(
        self,
        windows: dict[str, NumericWindow],
        categorical: Mapping[str, CategoricalWindow] | None = None,
    ) -> WindowOutcome | None:
        """Test one window of the features (numeric ``windows``, ``categorical``
        windows); None when not fitted or a fitted feature is absent."""
        categorical = categorical or {}
        if (
            not self.fitted
            or any(k not in windows for k in self._names)
            or any(c.name not in categorical for c in self._categories)
        ):
            return None
        columns = [c.column_index(categorical[c.name]) for c in self._categories]
        rows = columns[0].shape[0] if columns else windows[self._names[0]].n
        z = self._standardise([windows[k].values for k in self._names], rows)
        spe, t2 = self._row_stats(z, columns)
        best: tuple[float, float, float, str] | None = None
        for label, ref, win in (("spe", self._errors, np.sort(spe)), ("t2", self._t2, np.sort(t2))):
            d_plus, _ = ks_distances(ref, win)
            p = min(1.0, 2 * ks_pvalue_one_sided(d_plus, ref.shape[0], win.shape[0]))
            # both sorted: their medians without np.median's partition
            ratio = sorted_median(win) / max(sorted_median(ref), 1e-12)
            if best is None or p < best[1]:
                best = (d_plus, p, ratio, label)
        assert best is not None
        d_plus, p, ratio, label = best
        return WindowOutcome(
            statistic=d_plus,
            effect_size=ratio,
            severity=severity_for(ratio, self.critical_effect),
            p_value=p,
            details={
                "statistic_kind": label,
                "components": int(self._components.shape[1]),
                "features": len(self._names) + len(self._categories),
                "categorical_features": len(self._categories),
            },
        )

    def dump(self, stored: Container[str] = frozenset()) -> dict[str, Any]:
        """Plain data; the fitted tables named by digest where ``stored`` has them."""
        fixed = self._fixed
        return {
            "params": self.params(),
            "names": list(self._names),
            "mean": encode_array(self._mean),
            "std": encode_array(self._std),
            "components": fixed.dump("components", self._components, stored),
            "spread": encode_array(self._spread),
            "errors": fixed.dump("errors", self._errors, stored),
            "t2": fixed.dump("t2", self._t2, stored),
            "categorical": [c.dump() for c in self._categories],
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> PCADrift:
        """Rebuild from :meth:`dump`. A state saved before categorical features
        joined the test has none: it keeps testing its numeric features as it
        did, until the next reference is fitted."""
        det = cls.build(**state["params"])
        det._names = list(state["names"])
        det._mean = decode_array(state["mean"])
        det._std = decode_array(state["std"])
        det._components = decode_array(state["components"])
        det._spread = decode_array(state["spread"])
        det._errors = decode_array(state["errors"])
        det._t2 = decode_array(state["t2"])
        det._categories = [CategoryColumns.load(c) for c in state.get("categorical", [])]
        det._derive()
        return det
