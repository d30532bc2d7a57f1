"""The parts a report page is made of: tables, figures and sections, as plain data the templates render.

A figure always travels with the table of the numbers it draws, so the page reads without the picture (screen
readers, text browsers, a test that parses the page).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Table:
    """A data table; the first cell of each row is the row's header."""

    caption: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    """An inline SVG chart with its caption and the tables of what it shows."""

    svg: str
    caption: str
    data: list[Table] = field(default_factory=list)


@dataclass
class Section:
    """A titled part of a page: paragraphs, then tables, then charts. ``open`` unless the page is long."""

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)
    open: bool = True


@dataclass
class Page:
    """A whole report: title, what it is about in one line, and its sections in reading order."""

    title: str
    lead: str
    made_at: str
    sections: list[Section]
