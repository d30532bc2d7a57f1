"""``retain.models.tiny.build.pretrain`` continuing a built model (``start``) instead of a new one."""

from __future__ import annotations

import json

from retain import api
from retain.data.synthetic import probe_skills
from retain.models.tiny.build import BuildConfig, pretrain


def test_pretrain_from_the_embedded_model_continues_it(tmp_path):
    facts = pretrain(tmp_path / "more", BuildConfig(steps=2, lr=1e-6, warmup_steps=1, seed=0), start="embedded")
    manifest = json.loads((tmp_path / "more" / "MANIFEST.json").read_text())
    assert facts["continued_from"] == manifest["continued_from"] == "embedded"
    upper = next(s for s in probe_skills(n_test=8) if s.name == "upper")
    base, more = api.load_model("embedded", device="cpu"), api.load_model(str(tmp_path / "more"), device="cpu")
    # two steps at a rate of 1e-6 leave the embedded model's skills; a new model would answer none of these
    assert more.answer(upper.test, with_demonstration=False) == base.answer(upper.test, with_demonstration=False)
    assert sum(a.strip() == e.answer for a, e in zip(more.answer(upper.test, with_demonstration=False),
                                                    upper.test)) >= 7
