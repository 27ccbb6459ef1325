"""Drift detection on public data nobody here wrote, beside a plain batch check.

Takes one of the tabular datasets shipped inside NannyML's wheel (fetched once
from the package index into ~/.cache/driftwarden/nannyml; nothing of NannyML
is imported), turns its reference and analysis periods into Driftwarden
events, replays the analysis period against the reference
(``driftwarden replay --reference``), and prints, per feature:

- the batch check: two-sample KS (numeric) or chi-squared (categorical) tests
  of each 5,000-row chunk against the whole reference, at p < 0.001 per chunk;
- Driftwarden: the row of its first alert on the feature and whether the
  feature is still firing at the end of the stream.

    .venv/bin/python scripts/real_data_check.py --dataset wfh
    .venv/bin/python scripts/real_data_check.py --dataset credit_card
    .venv/bin/python scripts/real_data_check.py --dataset car_price
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import stats

WHEEL = "nannyml==0.13.1"
CACHE = Path.home() / ".cache" / "driftwarden" / "nannyml"
CHUNK = 5000
PEER_ALPHA = 1e-3
# name: (file stem, prediction column, score column or None, columns that are not features)
DATASETS = {
    "wfh": ("synthetic_sample", "y_pred", "y_pred_proba", {"work_home_actual", "period"}),
    "credit_card": ("mc", "y_pred", None, {"y_true"}),
    "car_price": ("regression_synthetic", "y_pred", None, {"y_true"}),
}
NOT_FEATURES = {"id", "timestamp"}


def wheel() -> Path:
    found = sorted(CACHE.glob("nannyml-*.whl"))
    if found:
        return found[-1]
    CACHE.mkdir(parents=True, exist_ok=True)
    print(f"fetching {WHEEL} (its datasets only are read) into {CACHE}", file=sys.stderr)
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(CACHE)]
    subprocess.run(pip, check=True)
    return sorted(CACHE.glob("nannyml-*.whl"))[-1]


def read_rows(archive: zipfile.ZipFile, stem: str) -> list[dict[str, str]]:
    with archive.open(f"nannyml/datasets/data/{stem}.csv") as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))


def value(text: str) -> float | str | None:
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


def events(rows: list[dict[str, str]], model: str, spec: tuple) -> list[dict[str, object]]:
    _, pred_col, score_col, skip = spec
    out = []
    for row in rows:
        features = {
            k: value(v)
            for k, v in row.items()
            if k not in NOT_FEATURES | skip | {pred_col} and not k.startswith("y_pred_proba")
        }
        event: dict[str, object] = {
            "model": model,
            "id": row["id"],
            "ts": row["timestamp"],  # no zone: read as UTC ([events] default_time_zone)
            "features": features,
            "prediction": value(row[pred_col]),
        }
        if score_col is not None:
            event["score"] = float(row[score_col])
        out.append(event)
    return out


def peer(
    reference: list[dict[str, object]], analysis: list[dict[str, object]]
) -> dict[str, list[int]]:
    """Per feature, the chunks (by first row) a plain batch test flags."""
    flagged: dict[str, list[int]] = {}
    names = list(reference[0]["features"])  # type: ignore[call-overload]
    for name in names:
        ref = [e["features"][name] for e in reference]  # type: ignore[index]
        numeric = all(isinstance(v, float) or v is None for v in ref)
        flagged[name] = []
        for start in range(0, len(analysis), CHUNK):
            chunk = [e["features"][name] for e in analysis[start : start + CHUNK]]  # type: ignore[index]
            if numeric:
                a = np.array([v for v in ref if v is not None], dtype=float)
                b = np.array([v for v in chunk if v is not None], dtype=float)
                p = float(stats.ks_2samp(a, b).pvalue)
            else:
                labels = sorted({str(v) for v in ref} | {str(v) for v in chunk})
                table = [[sum(str(v) == lab for v in ref) for lab in labels]]
                table.append([sum(str(v) == lab for v in chunk) for lab in labels])
                p = float(stats.chi2_contingency(np.array(table) + 0.5)[1])
            if p < PEER_ALPHA:
                flagged[name].append(start)
    return flagged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="wfh")
    parser.add_argument("--keep", help="a directory to keep the events and the store in")
    args = parser.parse_args()
    spec = DATASETS[args.dataset]
    with zipfile.ZipFile(wheel()) as archive:
        reference = events(read_rows(archive, f"{spec[0]}_reference"), args.dataset, spec)
        analysis = events(read_rows(archive, f"{spec[0]}_analysis"), args.dataset, spec)
    work = Path(args.keep or tempfile.mkdtemp(prefix="dw-real-"))
    work.mkdir(parents=True, exist_ok=True)
    for name, rows in (("reference", reference), ("analysis", analysis)):
        with (work / f"{name}.jsonl").open("w") as out:
            out.writelines(json.dumps(e) + "\n" for e in rows)
    store = work / "store.db"
    (work / "config.toml").write_text(
        f'[store]\npath = "{store}"\n[events]\ndefault_time_zone = "UTC"\n'
        f'[[models]]\nname = "{args.dataset}"\n'
    )
    replay = [sys.executable, "-m", "monitor.cli", "replay", "--config", str(work / "config.toml")]
    replay += [
        "--input",
        str(work / "analysis.jsonl"),
        "--reference",
        str(work / "reference.jsonl"),
    ]
    replay += ["--overwrite"]
    subprocess.run(replay, check=True)
    times = sorted(
        datetime.fromisoformat(str(e["ts"])).replace(tzinfo=UTC).timestamp() for e in analysis
    )
    db = sqlite3.connect(store)
    first = dict(db.execute("SELECT signal, min(event_ts) FROM alerts GROUP BY signal").fetchall())
    firing = {
        s for (s,) in db.execute("SELECT DISTINCT signal FROM signal_state WHERE state='firing'")
    }
    incidents = db.execute("SELECT kind, status, title FROM incidents ORDER BY id").fetchall()
    db.close()
    flagged = peer(reference, analysis)
    print(f"\n{args.dataset}: {len(reference):,} reference rows, {len(analysis):,} analysis rows")
    head = f"{'feature':28} {'batch: first chunk':>19} {'chunks':>7}"
    print(f"{head}  {'driftwarden: first alert row':>29}  end")
    for name, chunks in flagged.items():
        at = first.get(name)
        row = "-" if at is None else f"{bisect.bisect_left(times, at):,}"
        start = f"{chunks[0]:,}" if chunks else "-"
        state = "firing" if name in firing else "ok"
        share = f"{len(chunks):>4}/{-(-len(analysis) // CHUNK)}"
        print(f"{name:28} {start:>19} {share}  {row:>29}  {state}")
    for kind, status, title in incidents:
        print(f"incident [{kind}] {status}: {title}")
    print(f"files in {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
