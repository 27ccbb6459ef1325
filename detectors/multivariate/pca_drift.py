"""Multivariate input drift: PCA reconstruction error against the reference."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from detectors.base import DetectorBase
from detectors.codec import decode_array, encode_array
from detectors.window.base import NumericWindow, WindowOutcome, require_probability, severity_for
from detectors.window.ks import ks_distances, ks_pvalue_one_sided

Z_LIMIT = 1e6


class PCADrift(DetectorBase):
    """Multivariate input drift: PCA reconstruction error and Hotelling's T^2
    against the reference.

    A change in how features move together (a broken correlation, a new joint
    mode) can leave every marginal distribution intact. Principal components
    fitted on half of the reference capture its joint structure; rows that
    break it reconstruct poorly (squared prediction error, SPE), and rows that
    move within it have a large Hotelling T^2. Each statistic of the window's
    rows is compared with the same statistic of the other, held-out half of
    the reference by a one-sided KS test; the smaller p-value, doubled
    (Bonferroni), is reported, and judged by the suite with the window's other
    p-values. The effect size is the ratio of the window's median statistic to
    the reference's. Needs at least two numeric features.

    Parameters
    ----------
    variance
        Share of the reference's variance the kept components explain.
    critical_effect
        Ratio of medians at or above which a finding is critical rather than a
        warning.
    min_rows
        Rows of each reference half below which the test stays off.

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
    """

    name = "pca_drift"

    def __init__(
        self, variance: float = 0.9, critical_effect: float = 2.0, min_rows: int = 200
    ) -> None:
        require_probability("variance", variance)
        if not critical_effect > 1:
            raise ValueError(
                f"critical_effect must be > 1 (a ratio of medians), got {critical_effect!r}"
            )
        self.variance = variance
        self.critical_effect = critical_effect
        self.min_rows = min_rows
        self._names: list[str] = []
        self._mean = np.zeros(0)
        self._std = np.zeros(0)
        self._components = np.zeros((0, 0))
        self._spread = np.zeros(0)  # std of each component's scores
        self._errors = np.zeros(0)  # held-out SPE, sorted
        self._t2 = np.zeros(0)  # held-out T^2, sorted

    @property
    def fitted(self) -> bool:
        return self._errors.shape[0] > 0

    def _standardise(self, columns: list[np.ndarray]) -> np.ndarray:
        with np.errstate(all="ignore"):
            x = (np.column_stack(columns) - self._mean) / self._std
        # A value a million standard deviations out is as anomalous as one that
        # overflows (producers send 1e308): clipping keeps the squares finite.
        return np.clip(np.where(np.isfinite(x), x, 0.0), -Z_LIMIT, Z_LIMIT)

    def _row_stats(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(SPE, T^2) of each row."""
        scores = z @ self._components
        recon = scores @ self._components.T
        spe = ((z - recon) ** 2).sum(axis=1)
        t2 = ((scores / self._spread) ** 2).sum(axis=1)
        return np.asarray(spe), np.asarray(t2)

    def fit(self, features: dict[str, np.ndarray], seed: int) -> None:
        """Learn the joint structure of the reference's numeric features."""
        names = sorted(features)
        rows = features[names[0]].shape[0] if names else 0
        if len(names) < 2 or rows < 2 * self.min_rows:
            self._errors = np.zeros(0)
            return
        x = np.column_stack([features[k] for k in names])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled below
            mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
            std = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
        self._names = names
        self._mean = np.where(np.isfinite(mean), mean, 0.0)
        self._std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        z = self._standardise([x[:, i] for i in range(x.shape[1])])
        order = np.random.default_rng([seed, rows]).permutation(rows)
        train, held = z[order[: rows // 2]], z[order[rows // 2 :]]
        try:
            _, s, vt = np.linalg.svd(train - train.mean(axis=0), full_matrices=False)
        except np.linalg.LinAlgError:
            self._errors = np.zeros(0)  # no structure to learn: the test stays off
            return
        explained = np.cumsum(s**2) / max(float(np.sum(s**2)), 1e-300)
        k = min(int(np.searchsorted(explained, self.variance)) + 1, len(names) - 1)
        self._components = vt[:k].T.copy()
        spread = s[:k] / np.sqrt(max(train.shape[0] - 1, 1))
        self._spread = np.where(spread > 0, spread, 1.0)
        spe, t2 = self._row_stats(held)
        self._errors, self._t2 = np.sort(spe), np.sort(t2)

    def test_window(self, windows: dict[str, NumericWindow]) -> WindowOutcome | None:
        if not self.fitted or any(k not in windows for k in self._names):
            return None
        z = self._standardise([windows[k].values for k in self._names])
        spe, t2 = self._row_stats(z)
        best: tuple[float, float, float, str] | None = None
        for label, ref, win in (("spe", self._errors, np.sort(spe)), ("t2", self._t2, np.sort(t2))):
            d_plus, _ = ks_distances(ref, win)
            p = min(1.0, 2 * ks_pvalue_one_sided(d_plus, ref.shape[0], win.shape[0]))
            ratio = float(np.median(win) / max(float(np.median(ref)), 1e-12))
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
                "features": len(self._names),
            },
        )

    def dump(self) -> dict[str, Any]:
        return {
            "params": self.params(),
            "names": list(self._names),
            "mean": encode_array(self._mean),
            "std": encode_array(self._std),
            "components": encode_array(self._components),
            "spread": encode_array(self._spread),
            "errors": encode_array(self._errors),
            "t2": encode_array(self._t2),
        }

    @classmethod
    def load(cls, state: dict[str, Any]) -> PCADrift:
        det = cls.build(**state["params"])
        det._names = list(state["names"])
        det._mean = decode_array(state["mean"])
        det._std = decode_array(state["std"])
        det._components = decode_array(state["components"])
        det._spread = decode_array(state["spread"])
        det._errors = decode_array(state["errors"])
        det._t2 = decode_array(state["t2"])
        return det
