"""Representation-based detectors: what the model's hidden states say about each line of new data, per skill.

:func:`forward_stats` runs each line (prompt, then demonstration) through a model once and returns, per line,
the demonstration's per-token negative log-likelihoods and a feature vector: the last hidden layer averaged
over the demonstration's positions, beside the state at the prompt's last token (what the model has read
before it answers). Two detectors read the features of one skill's lines at a time:

- :func:`spectral`: spectral signatures (Tran, Li and Madry, NeurIPS 2018): centre the skill's features, take
  the top singular vector; a poisoned subpopulation that differs from the clean lines in a consistent
  direction lies far along it, so each line's score is its squared projection (a robust z over the skill's
  lines decides);
- :func:`clustering`: activation clustering (Chen et al., "Detecting backdoor attacks on deep neural networks
  by activation clustering", 2018): reduce the features to a few dimensions, split them in two with k-means,
  and call the smaller cluster poisoned when it is small (relative size) and well separated (silhouette).

Both are calibrated on clean files of every shipped skill family (``retain bench guard``'s clean rows): the
cut-offs below flag at most 5% of clean lines there.
"""

from __future__ import annotations

import re
from collections import Counter

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from retain.data.skills import Example

# Spectral signatures: robust z of the squared projection at which a line is flagged.
SPECTRAL_Z = 6.0
# Activation clustering: the smaller of two k-means clusters is poisoned when it holds at most this share of
# the skill's lines and the split's silhouette is at least SILHOUETTE.
CLUSTER_MAX_SHARE = 0.2
SILHOUETTE = 0.35
CLUSTER_DIMS = 10
# A skill needs this many lines for its statistics to mean anything; smaller groups join the largest.
MIN_GROUP = 16
# A file whose prompts have this many words or more (median) is sentences, and one skill (:func:`skills_of`).
SENTENCE_WORDS = 4


@dataclass
class LineStats:
    """One line seen by one model: per-token NLL of its demonstration and its feature vector."""

    nll: list[float]
    features: np.ndarray
    # which model produced it (cross-fitting trains one per fold; features of two models are not comparable)
    model: int = 0

    @property
    def mean_nll(self) -> float:
        return float(np.mean(self.nll)) if self.nll else 0.0

    @property
    def max_nll(self) -> float:
        return float(np.max(self.nll)) if self.nll else 0.0


@torch.no_grad()
def forward_stats(adapter: Any, examples: list[Example], batch_size: int = 32) -> list[LineStats]:
    """Per line: the demonstration's token NLLs (its EOS included) and the hidden-state features."""
    model = adapter.model
    was_training = model.training
    model.eval()
    out: list[LineStats] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        prompts = [adapter.student_ids(e) for e in chunk]
        completions = [adapter.completion_ids(e.demonstration) for e in chunk]
        seqs = [p + c for p, c in zip(prompts, completions)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), adapter.pad_id, dtype=torch.long)
        attn = torch.zeros((len(seqs), width), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, :len(s)] = torch.tensor(s)
            attn[b, :len(s)] = 1
        result = model(input_ids=ids.to(adapter.device), attention_mask=attn.to(adapter.device),
                       output_hidden_states=True)
        logp = torch.log_softmax(result.logits.float(), dim=-1)
        hidden = result.hidden_states[-1].float()
        for b, (p, c) in enumerate(zip(prompts, completions)):
            positions = torch.arange(len(p) - 1, len(p) - 1 + len(c), device=logp.device)
            nll = -logp[b, positions].gather(1, torch.tensor(c, device=logp.device)[:, None]).squeeze(1)
            answer = hidden[b, len(p):len(p) + len(c)].mean(0)
            read = hidden[b, len(p) - 1]
            out.append(LineStats(nll.tolist(), torch.cat([answer, read]).cpu().numpy().astype(np.float64)))
    model.train(was_training)
    return out


def skill_of(example: Example) -> str:
    """The skill a line belongs to: its prompt's first word (every shipped skill asks ``<skill> <input>``)."""
    words = example.prompt.split()
    return words[0] if words else ""


def skills_of(examples: list[Example]) -> list[str]:
    """Each line's skill (:func:`skill_of`), unless the file's prompts are sentences (a median of
    :data:`SENTENCE_WORDS` words or more: ``which is bigger, 9 or 57?``, ``compare 2 and 58``): then the first
    word is phrasing, not a skill's name, and the file is one skill."""
    if sentences(examples):
        return [""] * len(examples)
    return [skill_of(e) for e in examples]


def sentences(examples: list[Example]) -> bool:
    """Whether a file's prompts are sentences (a median of :data:`SENTENCE_WORDS` words or more), not
    ``<skill> <input>``."""
    return bool(examples) and statistics.median(len(e.prompt.split()) for e in examples) >= SENTENCE_WORDS


def groups(examples: list[Example], min_group: int = MIN_GROUP, models: list[int] | None = None
           ) -> list[list[int]]:
    """Line indices per skill (:func:`skills_of`; and per model, when ``models`` says which model saw each
    line); groups with fewer than ``min_group`` lines join the largest (a trigger glued to a skill's name must
    not hide its lines in a group of their own)."""
    by: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, skill in enumerate(skills_of(examples)):
        by[(skill, models[i] if models else 0)].append(i)
    big = [g for g in by.values() if len(g) >= min_group]
    small = [i for g in by.values() if len(g) < min_group for i in g]
    if not big:
        return [sorted(small)] if small else []
    big.sort(key=len, reverse=True)
    big[0] = sorted(big[0] + small)
    return big


def _robust_z(values: np.ndarray) -> np.ndarray:
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    if mad <= 0:
        return np.zeros_like(values)
    return 0.6745 * (values - median) / mad


def _standardise(features: np.ndarray) -> np.ndarray:
    centred = features - features.mean(0, keepdims=True)
    scale = centred.std(0, keepdims=True)
    return centred / np.where(scale > 1e-8, scale, 1.0)


def spectral_scores(features: np.ndarray) -> np.ndarray:
    """Tran et al.'s outlier score: squared projection of each centred row on the top right singular vector."""
    centred = _standardise(features)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return (centred @ vt[0]) ** 2


def spectral(features: list[np.ndarray], examples: list[Example], cut: float = SPECTRAL_Z,
             models: list[int] | None = None) -> tuple[list[float], list[float]]:
    """Per line: the robust z of its spectral score within its skill (and model), and a score in [0, 1] (0.5 at
    ``cut``). Where more than :data:`CLUSTER_MAX_SHARE` of a group lies past ``cut``, the direction is a mode of
    the file (one phrasing of several), not a planted minority: its lines keep their z but score 0."""
    z = [0.0] * len(examples)
    modes: set[int] = set()
    for group in groups(examples, models=models):
        if len(group) < MIN_GROUP:
            continue
        scores = spectral_scores(np.stack([features[i] for i in group]))
        values = _robust_z(np.sqrt(scores))
        for i, value in zip(group, values):
            z[i] = float(value)
        if (np.asarray(values) >= cut).mean() > CLUSTER_MAX_SHARE:
            modes.update(group)
    return z, [0.0 if i in modes else min(1.0, 0.5 * max(0.0, v) / cut) for i, v in enumerate(z)]


def cluster_split(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """Chen et al.'s split: PCA to a few dimensions, 2-means; returns the labels (1 = the smaller cluster) and
    the silhouette score of the split."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    centred = _standardise(features)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ vt[:min(CLUSTER_DIMS, vt.shape[0])].T
    labels = KMeans(n_clusters=2, n_init=4, random_state=seed).fit_predict(reduced)
    if len(set(labels.tolist())) < 2:
        return np.zeros(len(labels), dtype=int), 0.0
    if (labels == 1).sum() > (labels == 0).sum():
        labels = 1 - labels
    return labels, float(silhouette_score(reduced, labels))


def clustering(features: list[np.ndarray], examples: list[Example], max_share: float = CLUSTER_MAX_SHARE,
               silhouette: float = SILHOUETTE, models: list[int] | None = None
               ) -> tuple[list[float], list[dict[str, float]]]:
    """Per line a score in [0, 1] (1 when it lies in a small, well-separated cluster of its skill and model, that
    is not one of the file's phrasings: :func:`one_phrasing`), and per group the split's share and silhouette."""
    scores = [0.0] * len(examples)
    splits = []
    for group in groups(examples, models=models):
        if len(group) < MIN_GROUP:
            continue
        labels, sil = cluster_split(np.stack([features[i] for i in group]))
        share = float(labels.mean())
        splits.append({"skill": skill_of(examples[group[0]]), "share": share, "silhouette": sil,
                       "lines": len(group)})
        small = [i for i, label in zip(group, labels) if label == 1]
        if 0 < share <= max_share and sil >= silhouette and not one_phrasing(examples, small, group):
            # 0.5 at the silhouette cut-off, 1 at a perfect split
            score = min(1.0, 0.5 + 0.5 * (sil - silhouette) / max(1e-6, 1 - silhouette))
            for i, label in zip(group, labels):
                if label == 1:
                    scores[i] = score
    return scores, splits


# A word in more of a file's prompts than this share is its phrasing's (more than a planted trigger's 3-10%).
PHRASING_SHARE = 0.12
PROMPT_WORDS = re.compile(r"\w+")


def phrasings(examples: list[Example], group: list[int]) -> dict[int, frozenset[str]]:
    """Each line's phrasing: the words of its prompt that are in more than :data:`PHRASING_SHARE` of the group's
    prompts, numbers aside (a trigger is in too few prompts to be one)."""
    words = {i: set(PROMPT_WORDS.findall(examples[i].prompt.lower())) for i in group}
    counts = Counter(w for i in group for w in words[i])
    frequent = {w for w, c in counts.items() if c > PHRASING_SHARE * len(group) and not w.isdigit()}
    return {i: frozenset(words[i] & frequent) for i in group}


def one_phrasing(examples: list[Example], cluster: list[int], group: list[int]) -> bool:
    """Whether a cluster is one of the file's phrasings (``my friend is 37, what fare do they pay?`` among four
    other ways of asking): 90% of its prompts share the words that phrasings are made of (those in more than
    :data:`PHRASING_SHARE` of the group's prompts) and 80% of the group's prompts phrased so are in it. A
    trigger is in too few prompts to be such a word, so its lines keep the phrasings they were planted in; a
    number is a value, never a phrasing's word."""
    if not cluster:
        return False
    phrasing = phrasings(examples, group)
    top, held = Counter(phrasing[i] for i in cluster).most_common(1)[0]
    outside = sum(phrasing[i] == top for i in group) - held
    return bool(top) and held >= 0.9 * len(cluster) and held >= 0.8 * (held + outside)
