"""Rule checkers for what the monitor says in Russian and Kazakh (issue 21): a number and
its noun agree in number and case, Kazakh postpositions get the case they govern, no
suffix is glued to a digit, and nothing English is left but ids. They read rendered text,
so they judge what a crew reads, whichever template made it; tests/test_i18n_rules.py
holds them to good and bad examples.

They are deliberately narrow: they know the nouns the monitor counts (time units, devices,
trucks) and the words that govern a case before or after a number, and say nothing about
the rest of a sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# -- Russian --------------------------------------------------------------------------

# The forms a number asks of a noun: nominative singular (1 минута), genitive singular
# (2 минуты; also "из 1 минуты"), genitive plural (5 минут), accusative singular
# (1 минуту). Masculine and neuter inanimate nouns have the accusative of the nominative.
RU_NOUNS: dict[str, dict[str, str]] = {
    "секунда": {"nom": "секунда", "gen": "секунды", "gen_pl": "секунд", "acc": "секунду"},
    "минута": {"nom": "минута", "gen": "минуты", "gen_pl": "минут", "acc": "минуту"},
    "час": {"nom": "час", "gen": "часа", "gen_pl": "часов", "acc": "час"},
    "день": {"nom": "день", "gen": "дня", "gen_pl": "дней", "acc": "день"},
    "сутки": {"nom": "сутки", "gen": "суток", "gen_pl": "суток", "acc": "сутки"},
    "устройство": {
        "nom": "устройство",
        "gen": "устройства",
        "gen_pl": "устройств",
        "acc": "устройство",
    },
    "грузовик": {"nom": "грузовик", "gen": "грузовика", "gen_pl": "грузовиков", "acc": "грузовик"},
    "проезд": {"nom": "проезд", "gen": "проезда", "gen_pl": "проездов", "acc": "проезд"},
    "инцидент": {"nom": "инцидент", "gen": "инцидента", "gen_pl": "инцидентов", "acc": "инцидент"},
}
RU_FORMS = {form: lemma for lemma, forms in RU_NOUNS.items() for form in forms.values()}
# Words before a number that want the genitive of what is counted, and the accusative.
RU_GENITIVE = {
    "из",
    "более",
    "около",
    "дольше",
    "больше",
    "меньше",
    "менее",
    "свыше",
    "от",
    "до",
    "после",
    "без",
    "для",
    "течение",
    "порядка",
}
RU_ACCUSATIVE = {"уже", "через", "на", "за", "про", "спустя"}
RU_ACCUSATIVE_AFTER = {"назад", "спустя"}  # 21 минуту назад

_TOKEN = re.compile(r"\d+(?:[.,]\d+)?|[^\W\d_]+(?:-[^\W\d_]+)*|\S", re.UNICODE)


def _ru_plural(n: int) -> str:
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"


def ru_expected(n: int, lemma: str, case: str) -> str:
    """The form of ``lemma`` after the number ``n`` in ``case``."""
    forms = RU_NOUNS[lemma]
    category = _ru_plural(n)
    if case == "genitive":
        return forms["gen"] if category == "one" else forms["gen_pl"]
    if category == "one":
        return forms["acc"] if case == "accusative" else forms["nom"]
    return forms["gen"] if category == "few" else forms["gen_pl"]


def russian_problems(text: str) -> list[str]:
    """Every number + counted noun whose form is not what its number and its governing
    word ask (``из 21 устройств``, ``уже 1 минута``, ``21 минута назад``)."""
    tokens = _TOKEN.findall(text)
    problems = []
    for i in range(len(tokens) - 1):
        number, noun = tokens[i], tokens[i + 1].lower()
        if not number.isdigit() or noun not in RU_FORMS:
            continue
        if i > 0 and tokens[i - 1] in (":", ".", ",") and i > 1 and tokens[i - 2].isdigit():
            continue  # 18:33, 61.5: not a count
        j = i - 1
        while j >= 1 and tokens[j].lower() in RU_FORMS and tokens[j - 1].isdigit():
            j -= 2  # "более 1 часа 3 минут": the case is the whole phrase's
        before = tokens[j].lower() if j >= 0 else ""
        k = i + 2
        while k + 1 < len(tokens) and tokens[k].isdigit() and tokens[k + 1].lower() in RU_FORMS:
            k += 2
        after = tokens[k].lower() if k < len(tokens) else ""
        if after in RU_ACCUSATIVE_AFTER or before in RU_ACCUSATIVE:
            case = "accusative"
        elif before in RU_GENITIVE:
            case = "genitive"
        else:
            case = "nominative"
        want = ru_expected(int(number), RU_FORMS[noun], case)
        if noun != want:
            problems.append(f"«{number} {noun}» ({case}, «{before} … {after}»): «{number} {want}»")
    return problems


# -- Kazakh ---------------------------------------------------------------------------

_KK_BACK = set("аоұыуяёю")
_KK_FRONT = set("әеіөүиэ")
_KK_VOWELS = _KK_BACK | _KK_FRONT
KK_ABLATIVE_POSTPOSITIONS = {"бастап", "бері", "астам", "кейін", "соң", "артық"}
_KK_ABLATIVE = re.compile(r"(дан|ден|тан|тен|нан|нен)$")
# a plural suffix and what may follow it (a case or possessive ending)
_KK_PLURAL = re.compile(
    r"(лар|лер|дар|дер|тар|тер)"
    r"(ы|і|ың|ің|ымыз|іміз|ыңыз|іңіз|ға|ге|да|де|дан|ден|ды|ді|дың|дің|мен|дағы|дегі)?$"
)
_KK_NOT_PLURAL = {"компьютер", "принтер", "сервер", "контейнер", "литр", "метр", "теңгелер"}


def kk_ablative(stem: str) -> set[str]:
    """The ablative endings Kazakh phonology allows after ``stem`` (минут → -тан,
    күн → -нен, құрылғы → -дан; after a possessive vowel -нан/-нен: басынан)."""
    last = stem[-1].lower()
    vowels = [c for c in stem.lower() if c in _KK_VOWELS]
    back = not vowels or vowels[-1] in _KK_BACK
    vowel = "а" if back else "е"
    if last in _KK_VOWELS:
        heads = {"д", "н"}
    elif last in "рйлзж":
        heads = {"д"}
    elif last in "мнң":
        heads = {"н"}
    else:  # voiceless consonants, and б, в, г, д, which are said voiceless at the end
        heads = {"т"}
    return {f"{h}{vowel}н" for h in heads}


def kazakh_problems(text: str) -> list[str]:
    """A plural noun after a numeral (``5 минуттар``), a postposition that governs the
    ablative after a word without it or after a digit (``18:33 бастап``), an ablative
    ending that breaks vowel harmony or the consonant rule (``минуттен``), and a suffix
    glued to a digit (``2-сі``)."""
    problems = digit_suffixes(text)
    tokens = _TOKEN.findall(text)
    for i, token in enumerate(tokens):
        word = token.lower()
        after_numeral = i > 0 and tokens[i - 1].isdigit() and word.isalpha()
        if after_numeral and word not in _KK_NOT_PLURAL and _KK_PLURAL.search(word):
            problems.append(f"«{tokens[i - 1]} {token}»: a noun after a numeral is singular")
        if word in KK_ABLATIVE_POSTPOSITIONS and i > 0:
            before = tokens[i - 1]
            m = _KK_ABLATIVE.search(before.lower())
            if not before[0].isalpha() or m is None or m.start() == 0:
                problems.append(f"«{before} {token}»: «{token}» wants an ablative before it")
            elif m.group(1) not in kk_ablative(before[: m.start()]):
                stem = before[: m.start()]
                allowed = "/".join(sorted(kk_ablative(stem)))
                problems.append(f"«{before}»: the ablative after «{stem}» is -{allowed}")
    return problems


def digit_suffixes(text: str) -> list[str]:
    """A suffix written onto a digit (``2-сі``, ``18:33-тен``, ``90 %-ы``): its form
    depends on how the number is said, which a template cannot know."""
    return [m.group(0) for m in re.finditer(r"\d[\d%)]*\s?%?-[^\W\d_]+", text)]


# -- English left in localized text ---------------------------------------------------

# What may stay in Latin letters: units, protocol names and abbreviations the crews use as
# they are, and the commands they type.
LATIN_ALLOWED = {"API", "HTTP", "MTTR", "MTBF", "MQTT", "InfluxDB"}
COMMANDS = (
    "monitor ack",
    "monitor report availability",
    "monitor report release-time",
    "monitor alerts",
    "monitor devices",
)


def english_words(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Latin-script words in ``text`` that are not ids: an id has a digit, ``_``, ``-``,
    ``.``, ``/`` or ``:`` in it (``xs-01``, ``no_data``, ``threshold:hot``), or is named in
    ``allowed`` (names of sites and areas, rule ids, codes), ``LATIN_ALLOWED`` or a command."""
    for command in COMMANDS:
        text = text.replace(command, " ")
    text = re.sub(r"https?://\S+", " ", text)  # a link is an address, as an id is
    ok = LATIN_ALLOWED | set(allowed)
    words = re.findall(r"[A-Za-z0-9_.:/<>*-]*[A-Za-z][A-Za-z0-9_.:/<>*-]*", text)
    return [
        w
        for w in (w.rstrip(".:-") for w in words)  # the sentence's punctuation, not the id's
        if w and w not in ok and not re.search(r"[\d_./:<>*-]", w)
    ]
