"""Matplotlib figures as SVG to inline in an HTML page.

Why matplotlib SVG rather than a JavaScript chart runtime (Vega-Lite and the like):
- no new dependency: matplotlib already draws the PNGs every benchmark writes, so the page and the PNGs show
  the same figure from the same code;
- no JavaScript runtime to inline or fetch: the page opens from disk, offline, and its charts are there even
  with scripts disabled;
- vector output prints sharply on paper at any size;
- with ``svg.fonttype = none`` every label stays a ``<text>`` element: readable by screen readers, searchable,
  selectable, and checkable by a test that parses the page.
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")  # no display on CI machines; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# Attributes that name or point at an element id inside one SVG; prefixed so two inlined figures never clash.
_ID_REFS = re.compile(r'(\bid="|url\(#|href="#)')


def figure_svg(fig: Figure, label: str, key: str) -> str:
    """``fig`` as an inline ``<svg>`` element labelled ``label`` for assistive technology; closes ``fig``.

    ``key`` (unique within the page) prefixes the figure's element ids.
    """
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "retain"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", key) + "-"
    text = _ID_REFS.sub(lambda m: m.group(1) + prefix, text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)
