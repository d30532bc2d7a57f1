"""Flagged sets on the guard bench's files (clean + every attack at a rate): print JSON per file."""
import json, sys, time
import torch
torch.set_num_threads(1)
from retain import api
from retain.data.synthetic import new_skills, probe_skills
from retain.guard.attacks import ATTACK_CLASSES, plant
from retain.guard.screen import screen
seed, rate = int(sys.argv[1]), float(sys.argv[2])
fams = sys.argv[3].split(",")
champion = api.load_model("embedded", device="cpu")
probes = [p for p in probe_skills(n_test=50, seed=seed) if not p.with_demonstration]
for fam in fams:
    skill = new_skills(n_train=200, n_test=50, seed=seed, names=[fam])[0]
    files = [("clean", skill.train, set())]
    for a in ATTACK_CLASSES:
        at = plant(a, fam, skill.train, rate, seed)
        files.append((a, at.examples, set(at.poisoned) if hasattr(at, "poisoned") else set()))
    for name, ex, bad in files:
        r = screen(champion, ex, probes, seed=seed)
        print(json.dumps({"family": fam, "attack": name, "flagged": sorted(l.line for l in r.flagged),
                          "grounded": r.details.get("grounded"), "twins": r.details.get("grounded_twins")}), flush=True)
