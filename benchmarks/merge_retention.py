"""Merge `retain bench retention` results of one stream run in parts (`--first-seed`), and print the table.

    python benchmarks/merge_retention.py OUT_DIR RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds a `retention.json` of the same stream and budget; the merged file (every run, the seeds of
all, mean and population standard deviation per recipe over the seeds it ran) is written to
OUT_DIR/retention.json, and a Markdown table of new-skill accuracy, prior kept, gate passes and CPU seconds (with
each recipe's CPU time over plain SDFT's, seed by seed, where `sdft` ran beside it) is printed.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def merge(parts: list[dict]) -> dict:
    first = parts[0]
    for part in parts[1:]:
        if part["stream"]["name"] != first["stream"]["name"] or part["budget"] != first["budget"]:
            raise SystemExit("the runs are of different streams or budgets; nothing merged")
    runs = [run for part in parts for run in part["runs"]]
    seen = [(run["label"], run["seed"]) for run in runs]
    if len(set(seen)) != len(seen):
        raise SystemExit(f"a recipe and seed ran twice: {sorted({s for s in seen if seen.count(s) > 1})}")
    summary = {}
    for label in dict.fromkeys(run["label"] for run in runs):
        mine = [run["summary"] for run in runs if run["label"] == label]
        summary[label] = {key: {"mean": statistics.fmean(m[key] for m in mine),
                                "std": statistics.pstdev([m[key] for m in mine]), "n": len(mine)}
                          for key in mine[0]}
    recipes = {k: v for part in parts for k, v in part["recipes"].items()}
    return {**first, "seeds": sorted({run["seed"] for run in runs}), "runs": runs, "summary": summary,
            "recipes": recipes, "merged_from": len(parts)}


def table(merged: dict) -> str:
    runs = merged["runs"]
    sdft = {run["seed"]: run["summary"]["cpu_seconds"] for run in runs if run["label"] == "sdft"}
    lines = ["| recipe | seeds | new-skill accuracy | prior kept | gate passed | CPU s per stream | CPU / sdft's |",
             "|---|---|---|---|---|---|---|"]
    for label, s in merged["summary"].items():
        mine = [run for run in runs if run["label"] == label]
        ratios = [run["summary"]["cpu_seconds"] / sdft[run["seed"]] for run in mine if run["seed"] in sdft]
        ratio = f"{statistics.fmean(ratios):.2f}x" if ratios and label != "sdft" else "-"
        cell = lambda k, scale=100, digits=1: (f"{s[k]['mean'] * scale:.{digits}f} ± {s[k]['std'] * scale:.{digits}f}")
        passed = sum(run["summary"]["gate_passed"] for run in mine)
        lines.append(f"| {label} | {','.join(str(run['seed']) for run in mine)} | {cell('new_skill_accuracy')}% | "
                     f"{cell('prior_retention')}% | {passed} of {3 * len(mine)} | {cell('cpu_seconds', 1, 0)} | "
                     f"{ratio} |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, parts = Path(sys.argv[1]), [json.loads((Path(p) / "retention.json").read_text()) for p in sys.argv[2:]]
    merged = merge(parts)
    out.mkdir(parents=True, exist_ok=True)
    (out / "retention.json").write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
    print(f"{merged['stream']['name']} stream, seeds {merged['seeds']}:\n")
    print(table(merged))


if __name__ == "__main__":
    main()
