"""Where a model's memory goes: the memory benchmark's events (``bench_daemon.py
--memory-only``: five windows past the reference, each request id its own string) fed
to models one after another through the pipeline, with a tracemalloc snapshot between
models; what each model added, grouped by the innermost frames of this project that
allocated it, averaged over the models (the first model is fed untraced: imports and
caches shared by all models are not counted).

    .venv/bin/python scripts/bench_memory_parts.py --models 6
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tracemalloc
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.config import parse_config  # noqa: E402
from monitor.ingest.events import Event, parse_event  # noqa: E402
from monitor.pipeline.pipeline import Pipeline  # noqa: E402
from monitor.store.store import Store  # noqa: E402
from scripts.bench_daemon import _copy, make_events  # noqa: E402


def _where(trace: tracemalloc.Traceback, depth: int) -> str:
    """The innermost ``depth`` frames in the project's own code, innermost first."""
    ours = [
        f
        for f in reversed(trace)  # tracemalloc lists the oldest frame first
        if str(ROOT) in f.filename and "/.venv/" not in f.filename and "/scripts/" not in f.filename
    ]
    return (
        " < ".join(f"{Path(f.filename).relative_to(ROOT)}:{f.lineno}" for f in ours[:depth])
        or "(outside the project)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=6, help="models traced")
    parser.add_argument("--depth", type=int, default=2, help="project frames per group")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="events a model (0: the memory benchmark's, five windows past the reference)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"m{i}" for i in range(args.models + 1)]
        config = parse_config(
            {"store": {"path": f"{tmp}/mem.db"}, "models": [{"name": n} for n in names]},
            "bench",
        )
        settings = config.suite_settings("m0")
        per_model = settings.reference_size + 5 * max(settings.window, settings.estimated_window)
        per_model = args.events or per_model
        events = [
            e for e in map(parse_event, make_events(per_model, 1, seed=3)) if isinstance(e, Event)
        ]
        store = Store(config.store.path)
        pipeline = Pipeline(config, store)
        totals: dict[str, int] = {}
        for i, name in enumerate(names):
            if i == 1:
                tracemalloc.start(40)
            before = tracemalloc.take_snapshot() if i else None
            for event in events:
                pipeline.feed(replace(event, model=name, id=_copy(event.id)))
            pipeline.checkpoint()
            if before is None:
                continue
            after = tracemalloc.take_snapshot()
            for stat in after.compare_to(before, "traceback"):
                key = _where(stat.traceback, args.depth)
                totals[key] = totals.get(key, 0) + stat.size_diff
        store.close()
    total = sum(totals.values())
    print(f"per model, mean of {args.models}: {total / args.models / 1024:,.0f} kB traced")
    for key, size in sorted(totals.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{size / args.models / 1024:9,.1f} kB  {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
