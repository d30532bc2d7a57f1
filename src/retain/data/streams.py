"""Named streams of new skills for the embedded model, and streams read from a user's skill files.

A stream is three new skills learned one after another. Each is built so that the embedded model cannot answer
it from the query alone but can from a demonstration in its prompt (SDFT's teacher): the teacher-gap check
``retain bench retention --stream NAME`` prints. Each differs from the others in kind:

* ``demo``: ``rotr``, ``swap``, ``ends``, the stream of ``retain demo`` and of every number published before
  the others existed. Defaults are tuned on it.
* ``strings2`` (**tuning**: defaults may be chosen on it, with ``demo``): short answers of other string
  families: ``outin`` (letters from both ends inwards), ``novow`` (the consonants), ``flip`` (the reverse with
  the first letter kept, which conflicts with the prior skill ``reverse`` as ``swap`` does with ``sort``: the
  same query words, a near answer).
* ``long`` (**held out**, never tuned on: report it, choose nothing by it): longer answers, 6 to 14 letters
  against the demo's 2 to 7: ``stutter`` (the growing prefixes, ``abcde`` -> ``aababcabcd``), ``bookend``
  (``aa`` + word + ``ee``), ``dblsort`` (sorted, each letter doubled: near the prior skills ``double`` and
  ``sort``). The base model's teacher answers them (71-98%), but plain SDFT at the default budget learns almost
  none of them (1% at the default rate, 8% at 3x, seed 0) while forgetting most prior skills: a stress test, not
  a stream to tune on.

Each named stream draws its words from a seed of its own (the demo's are ``0, 1, ...``; the others are offset),
so no two streams share held-out queries. A user's stream is a list of JSONL skill files (``prompt``,
``demonstration``, optional ``answer``), one skill per file named by the file's stem, learned in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retain.data.skills import Skill
from retain.errors import RetainError


@dataclass(frozen=True)
class Stream:
    """A named stream: its skills in order, its role in tuning (``tuning`` or ``held out``) and a seed offset."""

    name: str
    skills: tuple[str, ...]
    role: str
    about: str
    seed_offset: int = 0


STREAMS: dict[str, Stream] = {
    "demo": Stream("demo", ("rotr", "swap", "ends"), "tuning", "the demo's stream: short positional rules"),
    "long": Stream("long", ("stutter", "bookend", "dblsort"), "held out", "longer answers (6-14 letters)", 1000),
    "strings2": Stream("strings2", ("outin", "novow", "flip"), "tuning",
                       "other short string families; flip conflicts with the prior skill reverse", 2000),
}


def stream_skills(name: str, *, n_train: int, n_test: int, seed: int) -> list[Skill]:
    """The skills of the named stream for ``seed``; the demo's are exactly ``retain demo``'s."""
    from retain.data.synthetic import new_skills

    stream = STREAMS[name]
    return new_skills(n_train=n_train, n_test=n_test, seed=stream.seed_offset + seed, names=list(stream.skills))


@dataclass(frozen=True)
class StreamChoice:
    """What ``--stream`` chose: a named stream, or skill files (``name`` then says ``files``)."""

    name: str
    files: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, object]:
        if not self.files:
            stream = STREAMS[self.name]
            return {"name": self.name, "skills": list(stream.skills), "role": stream.role}
        return {"name": "files", "files": [str(f) for f in self.files], "skills": [f.stem for f in self.files]}


def choose(values: list[str], reserved: frozenset[str] | set[str] = frozenset()) -> StreamChoice:
    """``--stream``'s values: nothing (the demo), one stream name, or skill files, each read and checked now.

    A value that is neither a known name nor an existing file, a name given with anything else, a file whose
    line lacks the demonstration, two files with the same stem or a stem in ``reserved`` (the probes' names) is
    a :class:`RetainError` naming the file and line, or ``--stream``.
    """
    from retain.data.jsonl import read_examples

    if not values:
        return StreamChoice("demo")
    names = [v for v in values if v in STREAMS]
    if names:
        if len(values) > 1:
            raise RetainError(f"a stream name ({names[0]}) cannot be combined with other streams or files",
                              field="--stream")
        return StreamChoice(names[0])
    files = []
    for value in values:
        path = Path(value)
        if not path.exists() and path.suffix != ".jsonl":
            raise RetainError(f"unknown stream {value!r} (known: {', '.join(STREAMS)}, or JSONL skill files)",
                              field="--stream")
        read_examples(path)  # a missing file, or a line without its demonstration: file and line named
        if path.stem in reserved:
            raise RetainError(f"the skill would be named {path.stem!r}, which is a probe of the suite; rename the "
                              "file", file=str(path))
        if path.stem in [f.stem for f in files]:
            raise RetainError(f"two files name the skill {path.stem!r}; a stream's skills need distinct names",
                              file=str(path))
        files.append(path)
    return StreamChoice("files", tuple(files))
