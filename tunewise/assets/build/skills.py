"""General skills as question/answer facts: what the tiny base learns and the suite tests.

Each `Fact` belongs to one retention task and carries the short answer, a pool of wrong
answers of the same kind (multiple-choice distractors), and declarative sentences that
state it.  The general corpus renders every fact several times in several surface forms;
the retention suite asks the same facts as multiple choice, so it measures whether the
model still *knows* them after fine-tuning (retention), not whether it generalises.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.assets.build import facts as F

TASKS = ("tw_arith", "tw_count", "tw_compare", "tw_facts", "tw_zh")


@dataclass(frozen=True)
class Fact:
    task: str
    question: str
    answer: str
    pool: tuple[str, ...]  # candidate distractors, never containing `answer`
    statements: tuple[str, ...]
    lang: str = "en"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _near(n: int, low: int = 0) -> tuple[str, ...]:
    """Wrong numbers close to n: the plausible slips (off by one or two, or by ten)."""
    cands = [n + 1, n - 1, n + 2, n - 2, n + 10, n - 10, n + 3]
    return tuple(str(c) for c in dict.fromkeys(cands) if c >= low and c != n)


# Sizes are set by the pretraining budget: a few hundred facts per skill is what a 1-5M
# parameter model can learn in ~10 CPU minutes (each fact needs ~100 exposures).
MAX_OPERAND = 9  # arithmetic on 0-9
MAX_COUNT = 50  # "after n" for n < 50, "before n" for 0 < n <= 50
MAX_COMPARE = 9  # pairs of distinct numbers 0-9
MAX_ZH_OPERAND = 4  # Chinese sums of 0-4


def arithmetic() -> list[Fact]:
    out = []
    for a in range(MAX_OPERAND + 1):
        for b in range(MAX_OPERAND + 1):
            out.append(Fact("tw_arith", f"What is {a} + {b}?", str(a + b), _near(a + b),
                            (f"{a} + {b} = {a + b}", f"{a} plus {b} is {a + b}.", f"{a}+{b}={a + b}")))
    for a in range(MAX_OPERAND + 1):
        for b in range(a + 1):
            out.append(Fact("tw_arith", f"What is {a} - {b}?", str(a - b), _near(a - b),
                            (f"{a} - {b} = {a - b}", f"{a} minus {b} is {a - b}.", f"{a}-{b}={a - b}")))
    return out


def counting() -> list[Fact]:
    out = []
    for n in range(MAX_COUNT):
        out.append(Fact("tw_count", f"What number comes after {n}?", str(n + 1), _near(n + 1),
                        (f"After {n} comes {n + 1}.", f"The number after {n} is {n + 1}.", f"{n}, {n + 1}, {n + 2}")))
        m = n + 1
        out.append(Fact("tw_count", f"What number comes before {m}?", str(n), _near(n),
                        (f"Before {m} comes {n}.", f"The number before {m} is {n}.", f"{n}, {m}")))
    for k in range(1, 10):
        stars = " ".join("*" * k)
        out.append(Fact("tw_count", f"How many stars are in {stars}?", str(k), _near(k, low=1),
                        (f"{stars} has {k} stars.", f"There are {k} stars in {stars}.")))
    return out


def comparisons() -> list[Fact]:
    out = []
    for a in range(MAX_COMPARE + 1):
        for b in range(MAX_COMPARE + 1):
            if a == b:
                continue
            big, small = max(a, b), min(a, b)
            says = (f"{big} is bigger than {small}.", f"{small} is smaller than {big}.")
            out.append(Fact("tw_compare", f"Which is bigger, {a} or {b}?", str(big), (str(small),), says))
            out.append(Fact("tw_compare", f"Which is smaller, {a} or {b}?", str(small), (str(big),), says))
    return out


def _others(values, answer) -> tuple[str, ...]:
    return tuple(dict.fromkeys(str(v) for v in values if str(v) != str(answer)))


def world_facts() -> list[Fact]:
    return _places_and_colours() + _animals() + _words_and_numbers()


def _places_and_colours() -> list[Fact]:
    out = []
    caps = [c[1] for c in F.CAPITALS]
    for country, capital, _, _ in F.CAPITALS:
        out.append(Fact("tw_facts", f"What is the capital of {country}?", capital, _others(caps, capital),
                        (f"The capital of {country} is {capital}.", f"{capital} is the capital of {country}.")))
    colours = sorted({c[1] for c in F.COLOURS})
    for thing, colour, _, _ in F.COLOURS:
        out.append(Fact("tw_facts", f"What colour is {thing}?", colour, _others(colours, colour),
                        (f"{_cap(thing)} is {colour}.", f"The colour of {thing} is {colour}.")))
    return out


def _animals() -> list[Fact]:
    out = []
    sounds = [s for _, s in F.SOUNDS]
    for animal, sound in F.SOUNDS:
        out.append(Fact("tw_facts", f"What sound does {animal} make?", sound, _others(sounds, sound),
                        (f"{_cap(animal)} says {sound}.", f"The sound {animal} makes is {sound}.")))
    for animal, legs in F.LEGS:
        out.append(Fact("tw_facts", f"How many legs does {animal} have?", str(legs), _others(range(0, 12, 2), legs),
                        (f"{_cap(animal)} has {legs} legs.",)))
    babies = [y for _, y in F.BABIES]
    for animal, young in F.BABIES:
        out.append(Fact("tw_facts", f"What is a baby {animal.split()[-1]} called?", young, _others(babies, young),
                        (f"A baby {animal.split()[-1]} is called a {young}.",)))
    homes = [h for _, h in F.HOMES]
    for animal, home in F.HOMES:
        out.append(Fact("tw_facts", f"What is the home of {animal} called?", home, _others(homes, home),
                        (f"{_cap(animal)} lives in a {home}.", f"The home of {animal} is a {home}.")))
    return out


def _words_and_numbers() -> list[Fact]:
    out = []
    words = [w for pair in F.OPPOSITES for w in pair]
    for x, y in F.OPPOSITES:
        for a, b in ((x, y), (y, x)):
            pool = tuple(w for w in _others(words, b) if w != a)
            out.append(Fact("tw_facts", f"What is the opposite of {a}?", b, pool,
                            (f"The opposite of {a} is {b}.",)))
    for shape, sides in F.SHAPES:
        out.append(Fact("tw_facts", f"How many sides does {shape} have?", str(sides), _others(range(9), sides),
                        (f"{_cap(shape)} has {sides} sides.",)))
    for names, kind in ((F.DAYS, "day"), (F.MONTHS, "month")):
        for i, name in enumerate(names):
            nxt = names[(i + 1) % len(names)]
            out.append(Fact("tw_facts", f"What {kind} comes after {name}?", nxt, _others(names, nxt),
                            (f"After {name} comes {nxt}.", f"The {kind} after {name} is {nxt}.")))
    for thing, whole, n in F.UNITS:
        out.append(Fact("tw_facts", f"How many {thing} are in {whole}?", str(n), _near(n, low=1),
                        (f"{_cap(whole)} has {n} {thing}.", f"There are {n} {thing} in {whole}.")))
    for n, word in enumerate(F.NUMBER_WORDS):
        out.append(Fact("tw_facts", f"What number is {word}?", str(n), _near(n),
                        (f"{_cap(word)} is {n}.", f"The number {word} is written {n}.")))
    return out


def chinese() -> list[Fact]:
    out = []
    caps = [c[3] for c in F.CAPITALS]
    for _, _, country, capital in F.CAPITALS:
        out.append(Fact("tw_zh", f"{country}的首都是哪里？", capital, _others(caps, capital),
                        (f"{country}的首都是{capital}。", f"{capital}是{country}的首都。"), lang="zh"))
    colours = sorted({c[3] for c in F.COLOURS})
    for _, _, thing, colour in F.COLOURS:
        if thing is None:
            continue
        out.append(Fact("tw_zh", f"{thing}是什么颜色？", colour, _others(colours, colour),
                        (f"{thing}是{colour}的。", f"{thing}的颜色是{colour}。"), lang="zh"))
    for a in range(MAX_ZH_OPERAND + 1):
        for b in range(MAX_ZH_OPERAND + 1):
            out.append(Fact("tw_zh", f"{a}加{b}等于几？", str(a + b), _near(a + b),
                            (f"{a}加{b}等于{a + b}。",), lang="zh"))
    for i, day in enumerate(F.DAYS_ZH):
        nxt = F.DAYS_ZH[(i + 1) % 7]
        out.append(Fact("tw_zh", f"{day}后面是星期几？", nxt, _others(F.DAYS_ZH, nxt),
                        (f"{day}后面是{nxt}。",), lang="zh"))
    return out


def all_facts() -> list[Fact]:
    """Every fact, in a fixed order (generators shuffle with their own seeded RNG)."""
    return arithmetic() + counting() + comparisons() + world_facts() + chinese()
