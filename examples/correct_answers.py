"""A user who corrects the served model: ask `retain serve` questions of a skill, and send the right answer as
feedback wherever its answer is wrong (a good rating where it is right).

    retain serve ./home &
    python examples/correct_answers.py                 # 96 questions, the wrong answers corrected
    retain learn ./home --from-feedback                # the corrections are the teacher's demonstrations
    python examples/correct_answers.py --check         # new questions: how many the champion now gets right

The skill is one of the embedded library's new skills (``ends``: a word's first and last letters, by default)
or one of the skills it has.
``--check`` asks words never asked before and sends no feedback. Only the standard library is used: the
requests are what curl would send (any OpenAI client works the same way).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import urllib.error
import urllib.request

from retain.data.synthetic import NEW_RULES, PRIOR_RULES, random_word
from retain.evaluate.scorers import get_scorer


RULES = {**PRIOR_RULES, **NEW_RULES}  # the model's own skills (``sort`` it gets right 88% of the time) and new ones


def post(url: str, body: dict, key: str | None) -> dict:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def words(rng: random.Random, n: int, avoid: set[str] = frozenset()) -> list[str]:
    """``n`` distinct random words from ``rng``, none of ``avoid``."""
    out: dict[str, None] = {}
    while len(out) < n:
        word = random_word(rng)
        if word not in avoid:
            out[word] = None
    return list(out)


def questions(skill: str, n: int, seed: int, check: bool) -> list[tuple[str, str]]:
    """``n`` distinct (question, right answer) pairs; ``check`` asks words that no correcting run of this seed
    asks (of its first 4096)."""
    corrected = random.Random(f"correct-{skill}-{seed}")
    chosen = words(random.Random(f"check-{skill}-{seed}"), n, set(words(corrected, 4096))) if check \
        else words(corrected, n)
    return [(f"{skill} {w}", RULES[skill](w)) for w in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000/v1", help="the server's /v1 address")
    parser.add_argument("--skill", default="ends", choices=sorted(RULES), help="the behaviour to correct")
    parser.add_argument("--questions", type=int, default=96, help="how many questions to ask")
    parser.add_argument("--seed", type=int, default=0, help="which words are asked")
    parser.add_argument("--check", action="store_true", help="ask new words and send no feedback")
    parser.add_argument("--api-key", default=None, help="the server's key, where it needs one")
    args = parser.parse_args()
    if args.questions < 1:
        parser.error("--questions must be at least 1")
    score = get_scorer("alnum")
    right, versions = 0, set()
    try:
        for prompt, truth in questions(args.skill, args.questions, args.seed, args.check):
            reply = post(f"{args.url}/chat/completions", {"model": "home", "max_tokens": 16,
                                                          "messages": [{"role": "user", "content": prompt}]},
                         args.api_key)
            versions.add(reply["system_fingerprint"])
            good = bool(score(reply["choices"][0]["message"]["content"], truth))
            right += good
            if not args.check:
                post(f"{args.url}/feedback", {"response_id": reply["id"], "rating": 1 if good else -1,
                                              **({} if good else {"correction": truth})}, args.api_key)
    except urllib.error.HTTPError as err:  # the server answered, with an OpenAI-style error
        try:
            message = json.loads(err.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = err.reason
        print(f"correct_answers: {err.url}: HTTP {err.code}: {message}", file=sys.stderr)
        return 2
    except urllib.error.URLError as err:
        print(f"correct_answers: {args.url}: {err.reason} (is `retain serve` running there?)", file=sys.stderr)
        return 2
    done = "checked" if args.check else f"corrected {args.questions - right}, rated {right} good"
    print(f"{args.skill}: {right}/{args.questions} right ({right / args.questions:.0%}), answered by "
          f"{', '.join(sorted(versions))}; {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
