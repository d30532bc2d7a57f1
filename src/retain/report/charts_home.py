"""The two pictures of a home's report: the lineage graph of its versions and the score heatmap.

Neither relies on colour alone: every status has its own marker shape and a written label, and every heatmap
cell carries its score as text, with a cross where the version failed a gate check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retain.report.home_report import HomeReport, VersionCard
from retain.report.svg import plt

# status -> (marker, face colour, size); shapes differ so the graph reads in greyscale and on paper
MARKERS = {"champion": ("*", "#f2c12e", 260), "superseded": ("o", "#4c78a8", 70),
           "rolled-back": ("v", "#e45756", 90), "rejected": ("X", "#9d9d9d", 90), "candidate": ("o", "white", 70)}
FAILED = "\u2717"  # ✗


@dataclass(frozen=True)
class Placed:
    """A version's place in the lineage graph: its row (creation order) and lane (column)."""

    row: int
    lane: int


def _was_champion(card: VersionCard) -> bool:
    return any(e["type"] in ("promoted", "rolled_back") for e in card.events)


def layout(versions: list[VersionCard]) -> dict[str, Placed]:
    """Rows in creation order; a version continues its parent's lane when it is the parent's first child that
    became champion, else takes the lowest free lane to the right for the rows its subtree spans."""
    row = {v.name: i for i, v in enumerate(versions)}
    children: dict[str, list[VersionCard]] = {}
    for v in versions:
        if v.parent in row:
            children.setdefault(v.parent, []).append(v)
    end = dict(row)
    for v in reversed(versions):  # children come after parents, so one reverse pass finds subtree ends
        if v.parent in end:
            end[v.parent] = max(end[v.parent], end[v.name])
    busy: dict[int, list[tuple[int, int]]] = {}
    placed: dict[str, Placed] = {}
    continued: set[str] = set()
    for v in versions:
        parent = placed.get(v.parent) if v.parent else None
        if parent is None:
            lane, span = 0, (row[v.name], end[v.name])
        elif v.parent not in continued and _was_champion(v):
            continued.add(v.parent)  # type: ignore[arg-type]
            placed[v.name] = Placed(row[v.name], parent.lane)
            continue
        else:
            lane, span = parent.lane + 1, (parent.row + 1, end[v.name])
        while any(a <= span[1] and span[0] <= b for a, b in busy.get(lane, [])):
            lane += 1
        busy.setdefault(lane, []).append(span)
        placed[v.name] = Placed(row[v.name], lane)
    return placed


def _label(card: VersionCard, report: HomeReport) -> str:
    record = card.record
    what = f"learned {record['skill']} ({record['method']}{' +LoRA' if record['lora'] else ''})" \
        if record["skill"] else f"base model ({record['config'].get('source', '-')})"
    notes = [f"FORCED: {reason}" for reason in card.forced]
    notes += [f"champion again by rollback from {e['payload']['previous']}" for e in card.events
              if e["type"] == "rolled_back"]
    status = card.status + (" (current)" if card.name == report.champion and card.status != "champion" else "")
    return f"{card.name}  {status.upper()}  {what}" + "".join(f"  [{n}]" for n in notes)


def lineage_figure(report: HomeReport) -> plt.Figure:
    """The version tree, one row per version in creation order, with a marker per status and a text label."""
    cards = {v.name: v for v in report.versions}
    placed = layout(report.versions)
    lanes = max((p.lane for p in placed.values()), default=0) + 1
    n = len(report.versions)
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * lanes + 6.5, 0.8 + 0.34 * n))
    for name, p in placed.items():
        parent = placed.get(cards[name].parent or "")
        if parent is None:
            continue
        xs, ys = [parent.lane], [parent.row]
        if p.lane != parent.lane and p.row > parent.row + 1:
            xs.append(p.lane)
            ys.append(parent.row + 1)
        xs.append(p.lane)
        ys.append(p.row)
        style = ":" if cards[name].status == "rejected" else "-"
        ax.plot(xs, ys, style, color="#555555", linewidth=1.4, zorder=1)
    for name, p in placed.items():
        marker, face, size = MARKERS.get(cards[name].status, MARKERS["candidate"])
        ax.scatter([p.lane], [p.row], marker=marker, s=size, facecolors=face, edgecolors="black", linewidths=1,
                   zorder=3)
        ax.text(lanes - 0.4, p.row, _label(cards[name], report), va="center", ha="left", fontsize=9,
                fontweight="bold" if name == report.champion else "normal")
    for card in report.versions:  # a rollback: an arrow from the champion it replaced back to this version
        for e in card.events:
            source = placed.get(e["payload"].get("previous") or "") if e["type"] == "rolled_back" else None
            if source is not None:
                target = placed[card.name]
                ax.annotate("", xy=(target.lane + 0.12, target.row + 0.1), xytext=(source.lane + 0.12, source.row),
                            arrowprops={"arrowstyle": "-|>", "linestyle": "--", "color": "#8a3a00",
                                        "connectionstyle": "arc3,rad=-0.4", "linewidth": 1.2}, zorder=2)
                ax.text(min(source.lane, target.lane) - 0.25, (source.row + target.row) / 2, "rollback",
                        fontsize=7, color="#8a3a00", va="center", ha="right", rotation=90)
    handles = [ax.scatter([], [], marker=m, s=s, facecolors=f, edgecolors="black", label=status)
               for status, (m, f, s) in MARKERS.items()]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=len(handles), frameon=False,
              fontsize=8, handletextpad=0.2, columnspacing=1.0)
    ax.set_xlim(-0.8, lanes + 6.0)
    ax.set_ylim(n - 0.5, -0.7)
    ax.axis("off")
    return fig


def score_matrix(report: HomeReport, versions: list[VersionCard]) -> np.ndarray:
    """Rows: ``versions``; columns: the suite (probes, then skills); NaN where a version was not scored."""
    suites = {"probe": "probes", "skill": "skills"}
    return np.array([[v.scores[suites[kind]].get(name, math.nan) for kind, name in report.suite] for v in versions],
                    dtype=float).reshape(len(versions), len(report.suite))


def heatmap_figure(report: HomeReport, versions: list[VersionCard]) -> plt.Figure:
    """Each version's score on each suite entry, printed in its cell; a cross marks a failed gate check."""
    data = score_matrix(report, versions)
    rows, cols = data.shape
    fig, ax = plt.subplots(figsize=(2.6 + 0.85 * max(cols, 2), 1.6 + 0.34 * rows))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(data), vmin=0, vmax=1, cmap=cmap, aspect="auto")
    for i, card in enumerate(versions):
        failed = card.failed
        for j, (_, name) in enumerate(report.suite):
            value = data[i, j]
            if math.isnan(value):
                ax.text(j, i, "\u2013", ha="center", va="center", fontsize=8, color="#555555")
                continue
            mark = f" {FAILED}" if name in failed else ""
            ax.text(j, i, f"{value:.2f}{mark}", ha="center", va="center", fontsize=8,
                    color="white" if value < 0.55 else "black", fontweight="bold" if mark else "normal")
            if name == card.record["skill"]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.6))
    ax.set_xticks(range(cols), [f"{name}\n({kind})" for kind, name in report.suite], fontsize=8)
    ax.xaxis.tick_top()
    ax.set_yticks(range(rows), [f"{v.name} {v.status}" for v in versions], fontsize=8)
    bar = fig.colorbar(image, ax=ax, fraction=0.04 if rows > 8 else 0.08, pad=0.02)
    floor = report.policy.get("floor")
    if floor is not None:  # the floor is a tick of its own, replacing any round tick it would overlap
        bar.ax.axhline(floor, color="black", linewidth=2)
        ticks = [t for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if abs(t - floor) >= 0.08] + [floor]
        bar.set_ticks(sorted(ticks), labels=[f"floor {t:.2f}" if t == floor else f"{t:.1f}" for t in sorted(ticks)],
                      fontsize=8)
    ax.set_xlabel(f"boxed: the version's new skill (gate floor {floor if floor is not None else '-'});  "
                  f"{FAILED}: failed a gate check (a drop the gate refused, or below the floor);  \u2013: not "
                  "scored", fontsize=8)
    return fig
