"""Driftwarden's CBPE beside NannyML's, chunk by chunk, on the datasets NannyML ships.

For each dataset both estimate accuracy, F1 and ROC AUC per chunk of the
analysis period without its labels, after fitting on the labelled reference:
NannyML with ``nannyml.CBPE`` (its own realized metrics too, from the
analysis targets), Driftwarden with ``detectors.performance.estimated``, fed
the same rows as a stream (reference predictions each followed by its label,
then the analysis predictions; a window is a chunk). Printed per dataset and
metric: the mean and largest per-chunk difference of the two estimates, each
one's mean absolute error against the realized values, the chunks each
alarms on, and that the realized metrics of both agree. ``--chunks`` prints
every chunk.

NannyML is a benchmark dependency only, in its own virtualenv:

    make bench-venv            # .venv-bench: nannyml 0.13.1 (and statsmodels, which it imports)
    .venv-bench/bin/python scripts/bench_cbpe.py
    .venv-bench/bin/python scripts/bench_cbpe.py --held-out   # car loan and census: never tuned on
    .venv/bin/python scripts/bench_cbpe.py --cost 300000      # its CPU cost (no NannyML)

The datasets are NannyML's loaders' (CSV and Parquet files inside its wheel).
Titanic ships without predictions: a logistic regression fitted on its
reference (Pclass, sex, age, SibSp, Parch, fare) makes them, the same for both.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The repository's detectors, importable from the benchmark virtualenv (numpy and scipy only).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.performance import cbpe
from detectors.performance.estimated import EstimatedPerformance, Scored

METRICS = ("accuracy", "f1", "roc_auc")
ANALYSIS_SEQ = 10_000_000  # stream positions of the analysis rows start here


@dataclass
class Data:
    """One dataset as both sides see it: class probabilities, predictions, truths."""

    name: str
    classes: list[str]
    ref_proba: np.ndarray  # n x K (K = 2: [P(0), P(1)])
    ref_pred: np.ndarray  # class names
    ref_true: np.ndarray
    an_proba: np.ndarray
    an_pred: np.ndarray
    an_true: np.ndarray
    chunk: int
    nannyml: Any  # (reference, analysis) data frames and CBPE arguments


def _nannyml() -> Any:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # no analytics calls home
    try:
        import nannyml
    except ImportError:
        print(
            "bench_cbpe: nannyml is not importable here: run `make bench-venv`, then "
            "`.venv-bench/bin/python scripts/bench_cbpe.py`",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    return nannyml


def _binary(name: str, ref: Any, an: Any, proba: str, pred: str, true: str, chunk: int) -> Data:
    n_an = len(an) // chunk * chunk  # whole chunks only: NannyML keeps a short last one
    an = an.iloc[:n_an].copy()
    p_ref, p_an = ref[proba].to_numpy(float), an[proba].to_numpy(float)
    kwargs = {
        "y_pred_proba": proba,
        "y_pred": pred,
        "y_true": true,
        "problem_type": "classification_binary",
    }
    return Data(
        name,
        ["0", "1"],
        np.column_stack([1 - p_ref, p_ref]),
        ref[pred].astype(int).astype(str).to_numpy(),
        ref[true].astype(int).astype(str).to_numpy(),
        np.column_stack([1 - p_an, p_an]),
        an[pred].astype(int).astype(str).to_numpy(),
        an[true].astype(int).astype(str).to_numpy(),
        chunk,
        (ref, an, kwargs),
    )


# Binary datasets: NannyML's loader, then the probability, prediction and truth columns.
BINARY = {
    "synthetic_binary": (
        "load_synthetic_binary_classification_dataset",
        ("y_pred_proba", "y_pred", "work_home_actual", 5000),
    ),
    "california_housing": (
        "load_modified_california_housing_dataset",
        ("y_pred_proba", "y_pred", "clf_target", 1000),
    ),
    "car_loan": ("load_synthetic_car_loan_dataset", ("y_pred_proba", "y_pred", "repaid", 5000)),
    "census_employment": (
        "load_us_census_ma_employment_data",
        ("predicted_probability", "prediction", "employed", 20_000),
    ),
}


def load(name: str) -> Data:
    nml = _nannyml()
    if name in BINARY:
        loader, (proba, pred, true, chunk) = BINARY[name]
        ref, an, gt = getattr(nml, loader)()
        return _binary(name, ref, an.merge(gt, on="id"), proba, pred, true, chunk)
    if name == "titanic":
        return _titanic(nml)
    if name == "synthetic_multiclass":
        ref, an, gt = nml.load_synthetic_multiclass_classification_dataset()
        an = an.merge(gt, on="id")
        classes = ["highstreet_card", "prepaid_card", "upmarket_card"]
        columns = {c: f"y_pred_proba_{c}" for c in classes}
        kwargs = {
            "y_pred_proba": columns,
            "y_pred": "y_pred",
            "y_true": "y_true",
            "problem_type": "classification_multiclass",
        }
        chunk = 6000
        return Data(
            name,
            classes,
            ref[[columns[c] for c in classes]].to_numpy(float),
            ref["y_pred"].astype(str).to_numpy(),
            ref["y_true"].astype(str).to_numpy(),
            an[[columns[c] for c in classes]].to_numpy(float),
            an["y_pred"].astype(str).to_numpy(),
            an["y_true"].astype(str).to_numpy(),
            chunk,
            (ref, an, kwargs),
        )
    raise SystemExit(f"bench_cbpe: unknown dataset {name!r}")


def _titanic(nml: Any) -> Data:
    from sklearn.linear_model import LogisticRegression

    ref, an, gt = nml.load_titanic_dataset()
    an = an.merge(gt, on="PassengerId")

    def features(df: Any) -> np.ndarray:
        return np.column_stack(
            [
                df["Pclass"],
                (df["Sex"] == "male").astype(float),
                df["Age"].fillna(ref["Age"].median()),
                df["SibSp"],
                df["Parch"],
                df["Fare"].fillna(ref["Fare"].median()),
            ]
        )

    model = LogisticRegression(max_iter=1000).fit(features(ref), ref["Survived"])
    for df in (ref, an):
        df["y_pred_proba"] = model.predict_proba(features(df))[:, 1]
        df["y_pred"] = (df["y_pred_proba"] >= 0.5).astype(int)
    return _binary("titanic", ref, an, "y_pred_proba", "y_pred", "Survived", 100)


def ours(data: Data) -> tuple[dict[str, list[float]], dict[str, set[int]], dict[str, Any]]:
    """Driftwarden's estimate per chunk, the chunks it alarmed on, and its calibration."""
    est = EstimatedPerformance(window=data.chunk, reference=len(data.ref_pred))
    binary = len(data.classes) == 2
    events: list[Scored] = []
    for i in range(len(data.ref_pred)):
        events.append(_scored(2 * i, data, data.ref_proba[i], data.ref_pred[i], binary))
        events.append(Scored(2 * i + 1, 2 * i + 1, f"r{2 * i}", truth=str(data.ref_true[i])))
    for i in range(len(data.an_pred)):
        events.append(_scored(ANALYSIS_SEQ + i, data, data.an_proba[i], data.an_pred[i], binary))
    est.observe(events)
    results = est.take_results()
    values: dict[str, list[float]] = {
        m: [math.nan] * (len(data.an_pred) // data.chunk) for m in METRICS
    }
    for r in results:
        if r.kind == "estimated":
            values[r.metric][r.window] = r.value
    alarms: dict[str, set[int]] = {m: set() for m in METRICS}
    for change in est.take_changes():  # each window's test: did it break the limit?
        if change.change == "tested" and change.severity != "info":
            window = (int(change.event_ts) - ANALYSIS_SEQ) // data.chunk
            alarms[change.signal.removeprefix("estimated:")].add(window)
    assert est.calibration is not None, est.unsupported
    return (
        values,
        alarms,
        {
            "calibration": est.calibration.describe(),
            "positive": est.calibration.classes[est.calibration.positive],
        },
    )


def _scored(seq: int, data: Data, proba: np.ndarray, pred: str, binary: bool) -> Scored:
    # Event time is the stream position here: a window's tests say which chunk they judged.
    if binary:  # as a producer sends it: the probability of class 1 as the score
        return Scored(seq, float(seq), f"r{seq}", str(pred), float(proba[1]))
    probabilities = {c: float(v) for c, v in zip(data.classes, proba, strict=True)}
    return Scored(seq, float(seq), f"r{seq}", str(pred), math.nan, probabilities)


def our_realized(data: Data, positive: str) -> dict[str, list[float]]:
    index = {c: i for i, c in enumerate(data.classes)}
    pred = np.array([index[p] for p in data.an_pred])
    true = np.array([index[t] for t in data.an_true])
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for start in range(0, len(pred) // data.chunk * data.chunk, data.chunk):
        part = slice(start, start + data.chunk)
        value = cbpe.realized(data.an_proba[part], pred[part], true[part], index[positive])
        for m in METRICS:
            out[m].append(value[m])
    return out


Chunks = dict[str, list[float]]


def theirs(data: Data) -> tuple[Chunks, Chunks, dict[str, set[int]]]:
    """NannyML's estimate and realized value per chunk, and the chunks it alerted on."""
    nml = _nannyml()
    ref, an, kwargs = data.nannyml
    estimator = nml.CBPE(metrics=list(METRICS), chunk_size=data.chunk, **kwargs)
    estimator.fit(ref)
    df = estimator.estimate(an).filter(period="analysis").to_df()
    estimated = {m: [float(v) for v in df[(m, "value")]] for m in METRICS}
    realized = {m: [float(v) for v in df[(m, "realized")]] for m in METRICS}
    alerts = {m: {i for i, a in enumerate(df[(m, "alert")]) if a} for m in METRICS}
    return estimated, realized, alerts


def compare(name: str, show_chunks: bool) -> None:
    data = load(name)
    mine, my_alarms, about = ours(data)
    est, real, their_alerts = theirs(data)
    my_real = our_realized(data, about["positive"])
    n = len(est["accuracy"])
    print(
        f"\n### {name}: {len(data.ref_pred):,} reference rows, {n} chunks of {data.chunk:,}; "
        f"positive class {about['positive']}; our calibration: {about['calibration']}\n"
    )
    print(
        "| metric | mean abs. diff. ours − NannyML | largest | MAE vs realized: ours | NannyML "
        "| realized: largest diff. | alarms: ours | NannyML |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for m in METRICS:
        a, b, r = np.array(mine[m][:n]), np.array(est[m]), np.array(real[m])
        diff = np.abs(a - b)
        realized_gap = float(np.nanmax(np.abs(np.array(my_real[m][:n]) - r)))
        print(
            f"| {m} | {np.nanmean(diff):.2g} | {np.nanmax(diff):.2g} "
            f"| {np.nanmean(np.abs(a - r)):.4f} | {np.nanmean(np.abs(b - r)):.4f} "
            f"| {realized_gap:.1e} | {_chunks(my_alarms[m])} | {_chunks(their_alerts[m])} |"
        )
    if show_chunks:
        print("\n| chunk | metric | ours | NannyML | difference | realized |")
        print("| --- | --- | --- | --- | --- | --- |")
        for m in METRICS:
            for i in range(n):
                print(
                    f"| {i} | {m} | {mine[m][i]:.4f} | {est[m][i]:.4f} "
                    f"| {mine[m][i] - est[m][i]:+.4f} | {real[m][i]:.4f} |"
                )


def _chunks(chunks: set[int]) -> str:
    return ", ".join(str(c) for c in sorted(chunks)) or "none"


def cost(n: int) -> None:
    """CPU time of CBPE per scored prediction, as a share of the whole pipeline's on the
    same events (the default detectors, three features, a label for every other one)."""
    import tempfile
    import time

    from monitor.config import parse_config
    from monitor.ingest.events import Event
    from monitor.pipeline.pipeline import Pipeline, scored_row
    from monitor.store.store import Store

    rng = np.random.default_rng(1)
    p = rng.beta(0.6, 0.6, n)
    events: list[Event] = []
    for i in range(n):
        predicted = "fraud" if p[i] >= 0.5 else "ok"
        features = {"a": float(rng.normal()), "b": float(rng.normal()), "c": "x"}
        score = float(max(p[i], 1 - p[i]))
        events.append(
            Event(
                "prediction",
                "m",
                1.6e9 + i,
                id=f"r{i}",
                features=features,
                prediction=predicted,
                score=score,
            )
        )
        if i % 2:
            truth = "fraud" if rng.random() < p[i] else "ok"
            events.append(Event("label", "m", 1.6e9 + i + 0.5, id=f"r{i}", label=truth))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.db"
        config = parse_config({"store": {"path": str(path)}, "models": [{"name": "m"}]}, "bench")
        store = Store(path)
        pipeline = Pipeline(config, store)
        started = time.process_time()
        for k, event in enumerate(events, start=1):
            pipeline.feed(event)
            if k % 20_000 == 0:
                pipeline.checkpoint()
        pipeline.checkpoint()
        whole = time.process_time() - started
        store.close()
    started = time.process_time()
    scored = []
    for seq, event in enumerate(events):
        if event.type == "label":
            scored.append(Scored(seq, event.ts, event.id, truth=str(event.label)))
        else:
            made = scored_row(
                seq, event.ts, event.id, event.prediction, event.score, event.probabilities
            )
            assert made is not None
            scored.append(Scored(*made))
    making = time.process_time() - started
    estimator = EstimatedPerformance()
    # The reference and the first window (where the calibration is fitted, once), then the rest.
    predictions = np.cumsum([e.predicted is not None for e in scored])
    first = int(np.searchsorted(predictions, 10_000 + 2000 + 1))
    started = time.process_time()
    estimator.observe(scored[:first])
    warm = time.process_time() - started
    started = time.process_time()
    estimator.observe(scored[first:])
    steady = time.process_time() - started
    later = sum(1 for e in scored[first:] if e.predicted)
    per = (making / n + steady / later) * 1e6
    print(
        f"{n:,} predictions, {len(events):,} events: the pipeline {whole / n * 1e6:.1f} us per "
        f"prediction; CBPE {per:.2f} us per prediction after its calibration "
        f"({per / (whole / n * 1e6):.1%} of the pipeline's), its calibration {warm:.2f} s once"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", type=int, metavar="N", help="CPU cost on N predictions instead")
    parser.add_argument("--held-out", action="store_true", help="car loan and census only")
    parser.add_argument("--chunks", action="store_true", help="every chunk's values too")
    parser.add_argument("--dataset", action="append", help="only these datasets")
    args = parser.parse_args()
    if args.cost:
        cost(args.cost)
        return 0
    names = ["synthetic_binary", "synthetic_multiclass", "titanic", "california_housing"]
    if args.held_out:
        names = ["car_loan", "census_employment"]
    names = args.dataset or names
    nml = _nannyml()
    print(f"NannyML {nml.__version__}; numpy {np.__version__}; datasets: {', '.join(names)}")
    for name in names:
        compare(name, args.chunks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
