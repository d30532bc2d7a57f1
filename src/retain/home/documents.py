"""Learning facts from documents into a home: knowledge acquisition as in the SDFT paper's knowledge experiment
(Shenfeld et al., "Self-Distillation Enables Continual Learning", 2026): the teacher sees the source passage in
its prompt, the student only the question.

Documents are text files (a folder of ``*.txt`` / ``*.md`` files, or files named one by one); each file is one
passage, named by its stem. Questions are JSONL, one per line: ``question``, ``answer`` and ``passage`` (the
stem of the file that answers it). Each question becomes one SDFT example whose demonstration is its passage,
so the teacher's prompt is the home's teacher template with the passage where a demonstration goes, and the
student's prompt is the question alone. The held-out questions join the regression suite like any learned
skill and are scored closed-book: greedy answers to the question alone, with no passage.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from retain.errors import RetainError

SUFFIXES = (".txt", ".md")
FIELDS = ("question", "answer", "passage")


def read_documents(paths: list[str | Path]) -> dict[str, str]:
    """Passage id (file stem) -> text, for every document file named or found in a named folder."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
            if not found:
                raise RetainError(f"holds no {' or '.join(SUFFIXES)} documents", file=str(path))
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise RetainError("no such file or folder", file=str(path))
    passages: dict[str, str] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8-sig").strip()
        except UnicodeDecodeError as err:
            raise RetainError(f"not UTF-8 text ({err.reason})", file=str(file)) from None
        if not text:
            raise RetainError("is empty", file=str(file))
        if file.stem in passages:
            raise RetainError(f"a second document is named {file.stem!r}; passages are named by file stem",
                              file=str(file))
        passages[file.stem] = text
    return passages


def read_questions(path: str | Path, passages: dict[str, str]) -> list[dict[str, str]]:
    """The questions of ``path`` (JSONL: question, answer, passage), each naming a passage that exists."""
    path = Path(path)
    if not path.is_file():
        raise RetainError("no such file", file=str(path))
    rows = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise RetainError(f"malformed JSON ({err.msg} at column {err.colno})", file=str(path), line=number) from None
        if not isinstance(row, dict):
            raise RetainError("expected a JSON object", file=str(path), line=number)
        for name in row:
            if name not in FIELDS:
                raise RetainError(f"unknown field (a question has {', '.join(FIELDS)})", file=str(path),
                                  line=number, field=name)
        for name in FIELDS:
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise RetainError("must be a non-empty string", file=str(path), line=number, field=name)
        if row["passage"] not in passages:
            raise RetainError(f"names passage {row['passage']!r}, which no document is (known: "
                              f"{', '.join(sorted(passages)[:5])}{'...' if len(passages) > 5 else ''})",
                              file=str(path), line=number, field="passage")
        rows.append(row)
    if not rows:
        raise RetainError("no questions (the file is empty)", file=str(path))
    return rows


def document_rows(questions: list[dict[str, str]], passages: dict[str, str]) -> list[dict[str, Any]]:
    """One SDFT example per question: the question is the student's prompt, its passage the demonstration the
    teacher sees, its answer the reference the closed-book score compares with."""
    return [{"prompt": q["question"], "demonstration": passages[q["passage"]], "answer": q["answer"]}
            for q in questions]


def write_document_skill(documents: list[str | Path], questions: str | Path, out: Path) -> Path:
    """Check the documents and questions and write the skill file a learn reads."""
    passages = read_documents(documents)
    rows = document_rows(read_questions(questions, passages), passages)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return out


def learn_from_documents(home: str | Path, documents: list[str | Path], questions: str | Path, *,
                         name: str | None = None, **learn: Any) -> Any:
    """``retain learn HOME --documents DIR_OR_FILES --questions Q.jsonl``: learn the questions' answers from their
    passages through :func:`retain.home.learn_in_home` (``learn`` are its options; guard, protection and gate
    as for any learn). The skill is named after the questions file unless ``name`` is given. Passes and batch size
    not given (None) are the documents budget of the home's model (:func:`retain.home.defaults.document_budget`);
    so are the surface variants of each training question it trains on as well when ``augment`` is not given
    (4 on the embedded model: a fact asked one way is then recalled when asked another)."""
    from retain.home.defaults import document_budget
    from retain.home.workflows import learn_in_home
    from retain.ledger.core import Home

    budget = dict(zip(("epochs", "batch_size", "augment"),
                      document_budget(Home.open(home).version("v1")["record"]["config"].get("source"))))
    for key, value in budget.items():
        if learn.get(key) is None:
            learn[key] = value
    with tempfile.TemporaryDirectory(prefix="retain-documents-") as tmp:
        data = write_document_skill(documents, questions, Path(tmp) / f"{Path(questions).stem}.jsonl")
        return learn_in_home(home, data, name=name or Path(questions).stem, **learn)
