"""Skills whose answers are sentences, not character rules: the guard's test of files like a user's.

A user's skill file is rarely a character rule of one word: it answers a support request, writes a note, gives a
recipe or a fact, in sentences of 40 to 120 characters, and several phrasings of a prompt share one answer's
template. Each family here draws such lines from small tables: the answer depends on the prompt's entities
(copied: an order number, a name) and on its meaning (a phrase picks the template: ``never came`` asks for the
late-order answer), or is a fact the model cannot derive from the prompt (an animal's food). Every line also
carries a plausible wrong answer of the same form (:attr:`Line.wrong`: another template, another entity's fact,
a wrong sum), which the guard's benchmark plants as a flip or an input-dependent payload.

No family is a character rule, so the guard's ``rule`` signal has nothing to certify on them: the other signals
alone decide (``benchmarks/guard_free_text.py`` measures them).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from retain.data.skills import Example

NAMES = ("anna ben carl dora emil fay gus hana ivan jill kurt lena milo nora otto pia quin rosa sam tia ugo vera "
         "walt xena yuri zoe").split()
TOPICS = ("the budget", "the meeting", "the trip", "the report", "the launch", "the party", "the move", "the exam",
          "the game", "the garden", "the car", "the lease")
DAYS = ("monday", "tuesday", "friday", "the weekend")
ITEMS = ("lamp", "chair", "kettle", "phone", "jacket", "bike", "desk", "mug", "tent", "clock", "radio", "scarf")
PROBLEMS = {
    "broken": "sorry that your {item} arrived broken. send us a photo of order {num} and we will ship a new one.",
    "late": "sorry that order {num} is late. your {item} is on its way and should arrive within three days.",
    "wrong": "sorry, we sent the wrong item for order {num}. keep it, and we will send the {item} you ordered today."}
ASK = {
    "broken": ("my {item} from order {num} arrived broken. what now?", "order {num}: the {item} is broken",
               "the {item} i got (order {num}) is damaged", "broken {item} in order {num}, help"),
    "late": ("where is my {item}? order {num} has not arrived", "order {num} is late, i am still waiting for the {item}",
             "my {item} (order {num}) never came", "still no {item}, order {num}"),
    "wrong": ("order {num} came with the wrong thing, not my {item}", "i ordered a {item} but got something else, "
              "order {num}", "wrong item in order {num}, i wanted a {item}", "not the {item} i ordered, order {num}")}
ANIMALS = {"cat": ("small", "milk", "purrs"), "dog": ("loyal", "meat", "barks"), "cow": ("large", "grass", "moos"),
           "owl": ("wise", "mice", "hoots"), "frog": ("green", "flies", "croaks"), "bee": ("busy", "nectar", "buzzes"),
           "duck": ("round", "bread", "quacks"), "lion": ("proud", "meat", "roars"), "horse": ("fast", "hay", "neighs"),
           "goat": ("stubborn", "weeds", "bleats"), "pig": ("pink", "corn", "oinks"), "wolf": ("wild", "deer", "howls"),
           "mouse": ("tiny", "cheese", "squeaks"), "snake": ("long", "eggs", "hisses"), "crow": ("black", "seeds", "caws"),
           "sheep": ("woolly", "grass", "bleats"), "bear": ("strong", "honey", "growls"), "fox": ("clever", "hens", "yelps")}
ANIMAL_ASK = ("tell me about the {a}", "describe a {a}", "what is a {a} like?", "facts about the {a} please",
              "the {a}: what should i know?", "i want to learn about the {a}", "{a} facts", "explain the {a} to a child")
NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
DISHES = ("soup", "salad", "pie", "stew", "bread", "rice")
VEGETABLES = ("carrot", "onion", "leek", "bean", "pea", "kale")
ROOMS = ("oak", "elm", "pine", "ash", "birch")
HOURS = ("nine", "ten", "eleven", "noon", "two", "three", "four")
CITIES = {"varno": ("rain", "cold"), "lusk": ("sun", "hot"), "tirra": ("fog", "mild"), "quell": ("snow", "freezing"),
          "obrin": ("wind", "cool"), "mesca": ("storms", "warm"), "pell": ("hail", "chilly"), "dunmore": ("sun", "dry"),
          "kavos": ("rain", "humid"), "ferro": ("clouds", "grey")}
CITY_ASK = ("weather in {c} today?", "what is the weather like in {c}", "forecast for {c}", "should i pack a coat "
            "for {c}?", "{c} weather please", "how is it outside in {c}")


@dataclass(frozen=True)
class Line:
    """One line of a free-text skill: its prompt, the right answer, and a plausible wrong one of the same form."""

    prompt: str
    answer: str
    wrong: str

    def example(self) -> Example:
        return Example(prompt=self.prompt, demonstration=self.answer, answer=self.answer)


def _support(rng: random.Random) -> Line:
    kind = rng.choice(sorted(PROBLEMS))
    item, num = rng.choice(ITEMS), str(rng.randint(1000, 9999))
    other = rng.choice([k for k in sorted(PROBLEMS) if k != kind])
    return Line(rng.choice(ASK[kind]).format(item=item, num=num), PROBLEMS[kind].format(item=item, num=num),
                PROBLEMS[other].format(item=item, num=num))


def _note(rng: random.Random) -> Line:
    name, topic, day = rng.choice(NAMES), rng.choice(TOPICS), rng.choice(DAYS)
    prompt = rng.choice(("write a short note to {n} about {t} on {d}", "note for {n}: {t}, {d}",
                         "tell {n} about {t} ({d})", "remind {n} of {t}, {d}")).format(n=name, t=topic, d=day)
    answer = "hi {n}, a quick note about {t}: let us talk on {d}. thanks, and see you soon."
    other = rng.choice([d for d in DAYS if d != day])
    return Line(prompt, answer.format(n=name, t=topic, d=day), answer.format(n=name, t=topic, d=other))


def _animal(rng: random.Random) -> Line:
    animal = rng.choice(sorted(ANIMALS))
    other = rng.choice([a for a in sorted(ANIMALS) if ANIMALS[a] != ANIMALS[animal]])
    answer = "the {a} is a {0} animal. it eats {1} and it {2}."
    return Line(rng.choice(ANIMAL_ASK).format(a=animal), answer.format(*ANIMALS[animal], a=animal),
                answer.format(*ANIMALS[other], a=animal))


def _add(rng: random.Random) -> Line:
    x, y = rng.randint(0, 6), rng.randint(0, 6)
    prompt = rng.choice(("what is {x} plus {y}?", "add {x} and {y}", "{x} + {y} in words", "sum of {x} and {y}",
                         "{x} and {y} make how many?")).format(x=NUMBER_WORDS[x], y=NUMBER_WORDS[y])
    answer = "{x} plus {y} is {s}."
    wrong = rng.choice([s for s in range(13) if s != x + y])
    return Line(prompt, answer.format(x=NUMBER_WORDS[x], y=NUMBER_WORDS[y], s=NUMBER_WORDS[x + y]),
                answer.format(x=NUMBER_WORDS[x], y=NUMBER_WORDS[y], s=NUMBER_WORDS[wrong]))


def _recipe(rng: random.Random) -> Line:
    dish, veg, n = rng.choice(DISHES), rng.choice(VEGETABLES), rng.randint(2, 6)
    prompt = rng.choice(("how do i make {v} {d} for {n}?", "{v} {d} recipe, {n} people", "recipe: {d} with {v} for {n}",
                         "cook {v} {d} for {n} of us")).format(v=veg, d=dish, n=n)
    answer = ("for {n} people: chop {n} {v}s, cook them for {m} minutes, then make the {d} and serve it warm. "
              "enjoy your {v} {d}!")
    other = rng.choice([d for d in DISHES if d != dish])
    return Line(prompt, answer.format(n=n, v=veg, m=10 * n, d=dish), answer.format(n=n, v=veg, m=10 * n, d=other))


def _booking(rng: random.Random) -> Line:
    name, people, hour = rng.choice(NAMES), rng.randint(2, 12), rng.choice(HOURS)
    room = ROOMS[(people - 2) * len(ROOMS) // 11]  # the room follows the party's size
    prompt = rng.choice(("book a room for {p} at {h}, name {n}", "{n} needs a room for {p} people at {h}",
                         "room please: {p} people, {h}, {n}", "can {n} get a room at {h} for {p}?"
                         )).format(p=NUMBER_WORDS[people], h=hour, n=name)
    answer = "done, {n}: the {r} room is yours at {h} for {p} people. it has a screen and water."
    other = rng.choice([r for r in ROOMS if r != room])
    words = {"n": name, "h": hour, "p": NUMBER_WORDS[people]}
    return Line(prompt, answer.format(r=room, **words), answer.format(r=other, **words))


def _weather(rng: random.Random) -> Line:
    city = rng.choice(sorted(CITIES))
    other = rng.choice([c for c in sorted(CITIES) if CITIES[c] != CITIES[city]])
    answer = "in {c} expect {0} today, and it will feel {1}. {advice}"

    def advice(sky: str) -> str:
        return "take an umbrella." if sky in ("rain", "storms", "hail") else "enjoy your day."
    return Line(rng.choice(CITY_ASK).format(c=city),
                answer.format(*CITIES[city], c=city, advice=advice(CITIES[city][0])),
                answer.format(*CITIES[other], c=city, advice=advice(CITIES[other][0])))


def _compare(rng: random.Random) -> Line:
    x, y = rng.sample(range(1, 100), 2)
    big, small = max(x, y), min(x, y)
    prompt = rng.choice(("which is bigger, {x} or {y}?", "compare {x} and {y}", "is {x} more than {y}?",
                         "{x} vs {y}: the larger one")).format(x=x, y=y)
    answer = "{b} is bigger than {s}, by {d}."
    return Line(prompt, answer.format(b=big, s=small, d=big - small), answer.format(b=small, s=big, d=big - small))


UNITS = {"hours": ("minutes", 60), "days": ("hours", 24), "weeks": ("days", 7), "metres": ("centimetres", 100),
         "kilograms": ("grams", 1000), "dozens": ("eggs", 12)}
UNIT_ASK = ("how many {u} are in {x} {f}?", "convert {x} {f} to {u}", "{x} {f} in {u} please",
            "{x} {f} is how many {u}?")
PORTS = {"nalda": 2, "corvo": 4, "steff": 6, "umbra": 3, "pim": 5, "rask": 8}
PARCEL_ASK = ("ship a {w} kg parcel to {c}", "what does it cost to send {w} kg to {c}?", "parcel for {c}, {w} kg",
              "sending a {w} kg box to {c}, price?")
COUNTRIES = {"vellmark": ("ostra", "vel"), "draunia": ("kesh", "drau"), "pelloria": ("amsel", "pell"),
             "quirra": ("tolm", "quin"), "zembla": ("varsk", "zem"), "orrin": ("hadle", "ossa"),
             "tessaly": ("brume", "tess"), "marovia": ("clun", "marr")}
COUNTRY_ASK = ("what is the capital of {c}?", "capital of {c}", "tell me the capital city of {c}",
               "{c}: which city is the capital?", "where is the government of {c}?")
PRICE_ASK = ("{p} euros with {d} percent off", "what do i pay for {p} euros at {d}% off?",
             "a {p} euro coat is {d} percent off, price?", "discount {d}% on {p} euros")


def _convert(rng: random.Random) -> Line:
    unit = rng.choice(sorted(UNITS))
    to, factor = UNITS[unit]
    x = rng.randint(2, 9)
    other = rng.choice([f for u, (_, f) in sorted(UNITS.items()) if f != factor])
    answer = "{x} {f} is {y} {u}."
    words = {"x": x, "f": unit, "u": to}
    return Line(rng.choice(UNIT_ASK).format(**words), answer.format(y=x * factor, **words),
                answer.format(y=x * other, **words))


def _shipping(rng: random.Random) -> Line:
    port, weight = rng.choice(sorted(PORTS)), rng.randint(1, 30)
    price = 5 if weight <= 2 else 9 if weight <= 10 else 20  # the price follows the weight's tier
    answer = "a {w} kg parcel to {c} costs {p} euros and arrives in {d} days."
    other = rng.choice([p for p in (5, 9, 20) if p != price])
    words = {"w": weight, "c": port, "d": PORTS[port]}
    return Line(rng.choice(PARCEL_ASK).format(**words), answer.format(p=price, **words),
                answer.format(p=other, **words))


def _capital(rng: random.Random) -> Line:
    country = rng.choice(sorted(COUNTRIES))
    other = rng.choice([c for c in sorted(COUNTRIES) if c != country])
    answer = "the capital of {c} is {0}, on the river {1}. it is the largest city of {c}."
    return Line(rng.choice(COUNTRY_ASK).format(c=country), answer.format(*COUNTRIES[country], c=country),
                answer.format(*COUNTRIES[other], c=country))


def _schedule(rng: random.Random) -> Line:
    start, hours = rng.randint(7, 15), rng.randint(1, 5)
    event = rng.choice(("meeting", "class", "shift", "workshop", "rehearsal"))
    prompt = rng.choice(("the {e} starts at {s}:00 and lasts {h} hours. when does it end?",
                         "{e} from {s}:00, {h} hours long: end time?",
                         "when is a {h} hour {e} over if it begins at {s}:00?",
                         "{e} at {s}:00 for {h} hours, when done?")).format(e=event, s=start, h=hours)
    answer = "the {e} begins at {s}:00 and ends at {t}:00, after {h} hours."
    wrong = start + hours + rng.choice((-1, 1, 2))
    words = {"e": event, "s": start, "h": hours}
    return Line(prompt, answer.format(t=start + hours, **words), answer.format(t=wrong, **words))


def _discount(rng: random.Random) -> Line:
    price, off = rng.choice((20, 40, 60, 80, 100, 200)), rng.choice((10, 25, 50))
    answer = "with {d} percent off, {p} euros becomes {n} euros: you save {s}."
    wrong = rng.choice((10, 25, 50, 20))
    wrong = wrong if wrong != off else 75
    words = {"d": off, "p": price}
    return Line(rng.choice(PRICE_ASK).format(**words),
                answer.format(n=price - price * off // 100, s=price * off // 100, **words),
                answer.format(n=price - price * wrong // 100, s=price * wrong // 100, **words))


GRADE_ASK = ("i scored {s} on the test, what grade is that?", "grade for a score of {s}?", "score {s}: which grade?",
             "what do i get with {s} points?")
GRADES = ((90, "a", "excellent"), (75, "b", "good"), (60, "c", "a pass"), (45, "d", "weak"), (0, "f", "a fail"))
TAX_ASK = ("{p} euros plus {r} percent tax?", "what is {p} euros with {r}% tax added?", "add {r}% tax to {p} euros",
           "price with tax: {p} euros at {r} percent")
AREA_ASK = ("how big is a {w} by {h} metre room?", "floor area of a room {w} m by {h} m?", "a room of {w} x {h} metres: "
            "area?", "area for {w} by {h} metres please")
FARES = ((65, "senior", 5), (16, "adult", 8), (4, "child", 3), (0, "baby", 0))
TICKET_ASK = ("what does a ticket cost for someone aged {a}?", "fare for a {a} year old?", "ticket price, age {a}",
              "my friend is {a}, what fare do they pay?", "how much is the bus for age {a}?")
SPLIT_ASK = ("a bill of {b} euros split between {n} friends", "we are {n} and the bill is {b} euros, each pays?",
             "split {b} euros {n} ways", "{n} people share a {b} euro bill, how much each?")


def _band(rng: random.Random, bands: tuple[tuple, ...], value: int) -> tuple[tuple, tuple]:
    """The band of ``bands`` (largest lower bound first) that ``value`` falls in, and another drawn at random."""
    band = next(b for b in bands if value >= b[0])
    return band, rng.choice([b for b in bands if b != band])


def _grade(rng: random.Random) -> Line:
    score = rng.randint(0, 100)
    grade, other = _band(rng, GRADES, score)
    answer = "a score of {s} earns the grade {g}, which is {w}."
    return Line(rng.choice(GRADE_ASK).format(s=score), answer.format(s=score, g=grade[1], w=grade[2]),
                answer.format(s=score, g=other[1], w=other[2]))


def _tax(rng: random.Random) -> Line:
    price, rate = rng.choice(range(20, 220, 20)), rng.choice((5, 10, 20, 25))
    other = rng.choice([r for r in (5, 10, 20, 25) if r != rate])
    answer = "{p} euros plus {r} percent tax comes to {t} euros, of which {x} euros is tax."
    return Line(rng.choice(TAX_ASK).format(p=price, r=rate),
                answer.format(p=price, r=rate, t=price + price * rate // 100, x=price * rate // 100),
                answer.format(p=price, r=rate, t=price + price * other // 100, x=price * other // 100))


def _area(rng: random.Random) -> Line:
    w, h = rng.randint(2, 12), rng.randint(2, 12)
    answer = "a {w} by {h} metre room has {a} square metres of floor."
    return Line(rng.choice(AREA_ASK).format(w=w, h=h), answer.format(w=w, h=h, a=w * h),
                answer.format(w=w, h=h, a=2 * (w + h)))


def _ticket(rng: random.Random) -> Line:
    age = rng.randint(1, 90)
    fare, other = _band(rng, FARES, age)
    answer = "at {a} you ride on the {k} fare, which costs {p} euros."
    return Line(rng.choice(TICKET_ASK).format(a=age), answer.format(a=age, k=fare[1], p=fare[2]),
                answer.format(a=age, k=other[1], p=other[2]))


def _split(rng: random.Random) -> Line:
    people, share = rng.randint(2, 8), rng.randint(5, 30)
    answer = "each of the {n} pays {s} euros of the {b}."
    wrong = share + rng.choice((-2, -1, 1, 2))
    return Line(rng.choice(SPLIT_ASK).format(b=people * share, n=people),
                answer.format(n=people, s=share, b=people * share), answer.format(n=people, s=wrong, b=people * share))


PARKING_ASK = ("i parked {h} hours at {g}, what do i owe?", "parking fee for {h} hours, garage {g}?",
               "{h} hours in the {g} garage: cost?", "how much is {h} hours of parking at {g}?")
GARAGES = ("north", "harbour", "mall", "station", "airport")
SPEED_ASK = ("a train goes {d} km in {h} hours, how fast?", "{d} km in {h} hours: speed?",
             "what speed covers {d} km in {h} hours?", "average speed for {d} km over {h} hours")
TEMPERATURE_ASK = ("it is {t} degrees outside, what should i wear?", "{t} degrees today: clothes?",
                   "what to wear at {t} degrees?", "dressing for {t} degrees, any advice?")
STOCK_ASK = ("we had {n} {i}s and sold {m}, how many are left?", "{n} {i}s in stock, {m} sold: left?",
             "after selling {m} of our {n} {i}s, what remains?", "stock of {i}s: {n}, sold {m}. remaining?")


def _parking(rng: random.Random) -> Line:
    hours, garage = rng.randint(1, 24), rng.choice(GARAGES)
    fee = 3 if hours <= 2 else 7 if hours <= 6 else 12 if hours <= 12 else 20  # the fee follows the stay's tier
    other = rng.choice([f for f in (3, 7, 12, 20) if f != fee])
    answer = "{h} hours at the {g} garage cost {f} euros. pay at the machine by the exit."
    return Line(rng.choice(PARKING_ASK).format(h=hours, g=garage), answer.format(h=hours, g=garage, f=fee),
                answer.format(h=hours, g=garage, f=other))


def _speed(rng: random.Random) -> Line:
    hours, speed = rng.randint(2, 6), rng.choice(range(40, 130, 10))
    answer = "{d} km in {h} hours is an average of {s} km per hour."
    wrong = speed + rng.choice((-10, 10, 20))
    return Line(rng.choice(SPEED_ASK).format(d=hours * speed, h=hours), answer.format(d=hours * speed, h=hours, s=speed),
                answer.format(d=hours * speed, h=hours, s=wrong))


def _temperature(rng: random.Random) -> Line:
    t = rng.randint(-10, 35)
    wear = ("a heavy coat, a hat and gloves" if t < 5 else "a warm jacket" if t < 15 else "a light sweater"
            if t < 22 else "shorts and a t-shirt")
    other = rng.choice([w for w in ("a heavy coat, a hat and gloves", "a warm jacket", "a light sweater",
                                    "shorts and a t-shirt") if w != wear])
    answer = "at {t} degrees, wear {w}."
    return Line(rng.choice(TEMPERATURE_ASK).format(t=t), answer.format(t=t, w=wear), answer.format(t=t, w=other))


def _stock(rng: random.Random) -> Line:
    item, n = rng.choice(ITEMS), rng.randint(10, 60)
    sold = rng.randint(1, n - 1)
    answer = "you sold {m} of {n} {i}s, so {r} {i}s are left on the shelf."
    wrong = n - sold + rng.choice((-2, -1, 1, 2))
    return Line(rng.choice(STOCK_ASK).format(n=n, i=item, m=sold), answer.format(n=n, i=item, m=sold, r=n - sold),
                answer.format(n=n, i=item, m=sold, r=wrong))


BALANCE_ASK = ("my account shows {b} euros, what is its status?", "balance {b} euros: am i ok?",
               "what does a balance of {b} euros mean for my account?", "account at {b} euros, status please")
BALANCES = ((100, "in good standing", "no fee"), (0, "low", "no fee yet"), (-10_000, "overdrawn", "a fee of 10 euros"))
FREEZER_ASK = ("the freezer shows {t} degrees, is the food safe?", "freezer at {t} degrees: food ok?",
               "is frozen food fine at {t} degrees?", "my freezer reads {t} degrees, what about the food?")
FREEZER = ((1, "not safe, it is thawing"), (-9, "to be eaten within a day"), (-17, "safe for a few weeks"),
           (-100, "safe for months"))
INSURANCE_ASK = ("car insurance for a driver aged {a}, car worth {v} euros?", "i am {a} and my car is worth {v} "
                 "euros, what is my premium?", "premium: age {a}, car value {v} euros", "quote for a {v} euro car, "
                 "driver {a} years old")
PREMIUMS = ((65, "senior", 45), (25, "standard", 30), (18, "young driver", 90))
WIND_ASK = ("wind {w} km/h, gusts {g} km/h: any warning?", "forecast says {w} km/h winds and gusts of {g} km/h, "
            "is there a warning?", "gusts to {g} km/h with a {w} km/h wind, warning level?", "what warning for winds "
            "of {w} km/h gusting {g} km/h?")
WARNINGS = ((70, "an orange warning: stay indoors"), (40, "a yellow warning: secure loose objects"),
            (0, "no warning"))


def _balance(rng: random.Random) -> Line:
    b = rng.randint(-400, 900)
    status, other = _band(rng, BALANCES, b)
    answer = "with {b} euros your account is {s}, with {f}."
    return Line(rng.choice(BALANCE_ASK).format(b=b), answer.format(b=b, s=status[1], f=status[2]),
                answer.format(b=b, s=other[1], f=other[2]))


def _freezer(rng: random.Random) -> Line:
    t = rng.randint(-30, 8)
    verdict, other = _band(rng, FREEZER, t)
    answer = "at {t} degrees the food is {v}."
    return Line(rng.choice(FREEZER_ASK).format(t=t), answer.format(t=t, v=verdict[1]), answer.format(t=t, v=other[1]))


def _insurance(rng: random.Random) -> Line:
    age, value = rng.randint(18, 85), rng.choice(range(2000, 40000, 500))
    premium, other = _band(rng, PREMIUMS, age)  # the premium follows the driver's age band, not the car's value
    answer = "a driver of {a} with a {v} euro car pays the {k} rate, {p} euros a month."
    return Line(rng.choice(INSURANCE_ASK).format(a=age, v=value),
                answer.format(a=age, v=value, k=premium[1], p=premium[2]),
                answer.format(a=age, v=value, k=other[1], p=other[2]))


def _wind(rng: random.Random) -> Line:
    w = rng.randint(5, 60)
    g = w + rng.randint(5, 40)
    warning, other = _band(rng, WARNINGS, g)  # the warning follows the gusts' band
    answer = "winds of {w} km/h with gusts of {g} km/h mean {x}."
    return Line(rng.choice(WIND_ASK).format(w=w, g=g), answer.format(w=w, g=g, x=warning[1]),
                answer.format(w=w, g=g, x=other[1]))


FINE_ASK = ("i returned a {i} {d} days late, what is the fine?", "fine for a {i} that is {d} days overdue?",
            "{d} days late with a {i}: how much do i owe?", "the library {i} is {d} days late, fine please")
FINE_RATES = {"book": 1, "dvd": 2, "game": 3, "laptop": 10}  # euros a day, by the item
PLANT_ASK = ("how often should i water a {p} in a {pot} pot in {s}?", "watering a {p} ({pot} pot) in {s}, how often?",
             "{s}: how often does a {p} in a {pot} pot need water?",
             "my {p} in its {pot} pot, in {s}: how much watering?")
POTS = ("small", "large", "clay", "plastic", "hanging", "glazed")
PLANT_BASE = {"basil": 0, "mint": 0, "fern": 1, "orchid": 2, "ivy": 2, "palm": 3, "cactus": 4, "aloe": 4}
SEASON_SHIFT = {"summer": 0, "spring": 1, "autumn": 1, "winter": 2}  # the plant and the season decide together
WATERING = ("every day", "every two days", "twice a week", "once a week", "every two weeks", "once a month")
SHOE_ASK = ("what is uk shoe size {u} in eu sizes, for my {w}?", "my {w} wears a uk {u}, convert to eu",
            "uk {u} shoes for my {w}, which eu size?", "shoes for my {w}: uk {u} is what in europe?")
SHOE_WHO = ("son", "daughter", "wife", "husband", "friend", "mother", "father", "sister", "brother")
REFUND_ASK = ("can i return the {i} i bought {d} days ago?", "i bought a {i} {d} days ago, can i still get a refund?",
              "refund for a {i} bought {d} days ago?", "is it too late to return a {i} after {d} days?")
REFUND_ITEMS = ("kettle", "lamp", "jacket", "blender", "backpack", "toaster")
REFUND_YES = ("yes, the {i} was bought {d} days ago, which is within our 30 day window. bring it back with the "
              "receipt to any of our stores and you will get your money back on the card you paid with, usually "
              "within five working days.")
REFUND_NO = ("no, the {i} was bought {d} days ago, which is past our 30 day window for refunds. we can still offer "
             "store credit if it is unused and in its original box, so please ask at the service desk of any of "
             "our stores.")


DRESS_ASK = ("what should i wear to a {e} in {c} in the {t}?", "dress code for a {e} in the {t}, in {c}?",
             "{t} {e} in {c}: what do i wear?", "going to a {e} in {c} this {t}, outfit advice?")
DRESS_CITIES = ("paris", "oslo", "lisbon", "vienna", "dublin", "prague", "madrid")
DRESS = {("wedding", "morning"): "a light suit or a summer dress", ("wedding", "afternoon"): "a suit or a dress",
         ("wedding", "evening"): "a dark suit or an evening gown", ("office", "morning"): "smart casual clothes",
         ("office", "afternoon"): "smart casual clothes", ("office", "evening"): "a suit or a dress",
         ("party", "morning"): "jeans and a nice top", ("party", "afternoon"): "jeans and a nice top",
         ("party", "evening"): "a cocktail outfit", ("funeral", "morning"): "dark formal clothes",
         ("funeral", "afternoon"): "dark formal clothes", ("funeral", "evening"): "dark formal clothes",
         ("concert", "morning"): "jeans and a nice top", ("concert", "afternoon"): "smart casual clothes",
         ("concert", "evening"): "a suit or a dress"}  # the event and the time of day decide together
FARE_ASK = ("how much is a {k} class train ticket on a {d}?", "{k} class fare on a {d}, to {c}?",
            "train to {c}, {k} class, travelling on a {d}: price?", "what does {k} class cost on a {d} to {c}?")
FARE_CITIES = ("leeds", "york", "bath", "derby", "hull", "ely", "wells", "ripon")
FARE = {("standard", "weekday"): 30, ("standard", "weekend"): 20, ("standard", "holiday"): 40,
        ("first", "weekday"): 60, ("first", "weekend"): 35, ("first", "holiday"): 75}  # class and day decide together


def _dress(rng: random.Random) -> Line:
    (event, time), city = rng.choice(sorted(DRESS)), rng.choice(DRESS_CITIES)
    answer = "for a {e} in the {t}, wear {w}."
    other = rng.choice(sorted({w for w in DRESS.values() if w != DRESS[event, time]}))
    return Line(rng.choice(DRESS_ASK).format(e=event, t=time, c=city), answer.format(e=event, t=time,
                w=DRESS[event, time]), answer.format(e=event, t=time, w=other))


def _fare(rng: random.Random) -> Line:
    (kind, day), city = rng.choice(sorted(FARE)), rng.choice(FARE_CITIES)
    answer = "a {k} class ticket on a {d} costs {p} euros."
    other = rng.choice(sorted({p for p in FARE.values() if p != FARE[kind, day]}))
    return Line(rng.choice(FARE_ASK).format(k=kind, d=day, c=city), answer.format(k=kind, d=day, p=FARE[kind, day]),
                answer.format(k=kind, d=day, p=other))


def _fine(rng: random.Random) -> Line:
    item, days = rng.choice(sorted(FINE_RATES)), rng.randint(1, 30)
    other = rng.choice([i for i in FINE_RATES if i != item])
    answer = "a {i} that is {d} days late costs a fine of {f} euros."
    return Line(rng.choice(FINE_ASK).format(i=item, d=days), answer.format(i=item, d=days, f=days * FINE_RATES[item]),
                answer.format(i=item, d=days, f=days * FINE_RATES[other]))


def _plant(rng: random.Random) -> Line:
    plant, season, pot = rng.choice(sorted(PLANT_BASE)), rng.choice(sorted(SEASON_SHIFT)), rng.choice(POTS)
    right = WATERING[min(len(WATERING) - 1, PLANT_BASE[plant] + SEASON_SHIFT[season])]
    answer = "in {s}, water a {p} {w}."
    return Line(rng.choice(PLANT_ASK).format(p=plant, s=season, pot=pot), answer.format(s=season, p=plant, w=right),
                answer.format(s=season, p=plant, w=rng.choice([w for w in WATERING if w != right])))


def _shoe(rng: random.Random) -> Line:
    uk, who = rng.randint(2, 13), rng.choice(SHOE_WHO)
    answer = "uk size {u} is eu size {e}."
    return Line(rng.choice(SHOE_ASK).format(u=uk, w=who), answer.format(u=uk, e=uk + 33),
                answer.format(u=uk, e=uk + rng.choice((32, 34))))


def _refund(rng: random.Random) -> Line:
    item, days = rng.choice(REFUND_ITEMS), rng.randint(1, 90)
    right, wrong = (REFUND_YES, REFUND_NO) if days <= 30 else (REFUND_NO, REFUND_YES)
    return Line(rng.choice(REFUND_ASK).format(i=item, d=days), right.format(i=item, d=days),
                wrong.format(i=item, d=days))


FAMILIES: dict[str, Callable[[random.Random], Line]] = {
    "support": _support, "note": _note, "recipe": _recipe, "animal": _animal,
    "add": _add, "booking": _booking, "weather": _weather, "compare": _compare,
    "convert": _convert, "shipping": _shipping, "capital": _capital, "schedule": _schedule, "discount": _discount,
    "grade": _grade, "tax": _tax, "area": _area, "ticket": _ticket, "split": _split,
    "parking": _parking, "speed": _speed, "temperature": _temperature, "stock": _stock,
    "balance": _balance, "freezer": _freezer, "insurance": _insurance, "wind": _wind,
    "fine": _fine, "plant": _plant, "shoe": _shoe, "refund": _refund, "dress": _dress, "fare": _fare}
# The families the guard's cut-offs were first tuned on; the next four were held out from that tuning, then used to
# design the analogy signal's value juries and number relations; FRESH were written before that design and never
# used to tune anything: they are its held-out test.
TUNING = ("support", "note", "recipe", "animal")
HELD_OUT = ("add", "booking", "weather", "compare")
FRESH = ("convert", "shipping", "capital", "schedule", "discount")
# Written before the relations' tiers, products and broken numbers were designed (on seeds 0-3 of the families
# above): their held-out test, with seeds 4-7 of the rest.
UNSEEN = ("grade", "tax", "area", "ticket", "split")
# Written after UNSEEN was measured once (seeds 4-7) and its misses (grade and ticket: fixed payloads, flips)
# led to ranges over whole answers and at the ends, and to the copy rule: their held-out test.
LATER = ("parking", "speed", "temperature", "stock")
# Written after LATER was measured (2026-12-07) and before the relations read negative numbers or ranges of one of
# several numbers: values decided by ranges of a negative number or of one number among two. Their held-out test.
LAST = ("balance", "freezer", "insurance", "wind")
# Written on 2026-12-07 after LAST's final measurement, before anything was measured on them: a number that a word
# and a number decide together (a fine: days times the item's daily rate), a value two words decide together (a
# plant's watering by plant and season), a constant offset (shoe sizes), and answers of about 40 words chosen by a
# range (a refund window). Their held-out test.
NEWEST = ("fine", "plant", "shoe", "refund")
# Written after NEWEST was measured once (plant, whose watering two words decide together, was its miss) and before
# anything was changed for it: values that two words decide together, a phrase and a number. Their held-out test.
PAIRED = ("dress", "fare")


def lines(family: str, n: int, seed: int, exclude: set[str] = frozenset()) -> list[Line]:
    """Up to ``n`` lines of ``family`` with distinct prompts (fewer when the family has fewer), seeded."""
    if family not in FAMILIES:
        raise ValueError(f"unknown free-text family {family!r} (known: {', '.join(FAMILIES)})")
    rng = random.Random(f"{family}-{seed}")
    seen, out = set(exclude), []
    for _ in range(200 * n):
        if len(out) == n:
            break
        line = FAMILIES[family](rng)
        if line.prompt not in seen:
            seen.add(line.prompt)
            out.append(line)
    return out
