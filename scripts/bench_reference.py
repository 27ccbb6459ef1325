"""Peak memory of ``driftwarden baseline set`` against ever larger reference files.

A reference file may be a model's whole training set; ``baseline set`` keeps a
seeded reservoir of at most ``reference_size`` events, so its memory must not
grow with the file. For each file size this writes a JSONL file of one model's
predictions (two numeric and one categorical feature, a score, a caller) into
a temporary folder, runs ``driftwarden baseline set`` on it in a fresh process
(every setting at its default: a reference of 10,000 events) and reports that
process's peak resident memory (its own ``VmHWM``, as ``bench_caps.py`` reads
it), the sample size and the seconds.

    .venv/bin/python scripts/bench_reference.py [--sizes 10000,100000,1000000]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_caps import CHILD, ROOT, _prediction, write_stream

CONFIG = '[store]\npath = "{store}"\n[[models]]\nname = "m"\n'


def predictions(count: int) -> Iterator[dict[str, object]]:
    for i in range(count):
        yield _prediction(i, client=f"api-key-{i % 50}")


def baseline_set(config: Path, events: Path, folder: Path) -> tuple[float, float, str]:
    """``driftwarden baseline set`` in a fresh process: peak resident MB, seconds, output."""
    peak, log = folder / "peak.txt", folder / "set.log"
    args = [sys.executable, "-c", CHILD, str(peak), "baseline", "set", "--model", "m"]
    args += ["--input", str(events), "--config", str(config), "--by", "bench"]
    started = time.perf_counter()
    with log.open("wb") as output:
        code = subprocess.run(args, cwd=ROOT, stdout=output, stderr=output).returncode
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"baseline set failed ({code}):\n{log.read_text()[-2000:]}")
    return int(peak.read_text()) / 1024, seconds, log.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    args = parser.parse_args()
    print("| events in the file | file MB | sample | peak RSS MB | seconds |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-reference-") as tmp:
        folder = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",")):
            events = folder / f"reference-{size}.jsonl"
            write_stream(events, predictions(size))
            store = folder / f"{size}.db"
            config = folder / "bench.toml"
            config.write_text(CONFIG.format(store=store))
            peak, seconds, output = baseline_set(config, events, folder)
            sample = re.search(r"sample of ([\d,]+) events", output)
            print(
                f"| {size:,} | {events.stat().st_size / 1e6:,.1f} | "
                f"{sample.group(1) if sample else '?'} | {peak:,.0f} | {seconds:,.1f} |",
                flush=True,
            )
            events.unlink()
            store.unlink()


if __name__ == "__main__":
    main()
