"""The questions answered from the customer's own data rather than from articles: where is my
order, has my refund gone through, what are my points and tier, how do I unsubscribe; and the
request for a person (``talk_to_person``), which hands the conversation off; and
``out_of_scope``, questions that are not the shop's business (weather, recipes, other products):
one closest to these is not answered, however close it also comes to an article. Their
example phrasings, per language, are ``intents.yaml`` beside this module; the matcher indexes
them with the articles."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import Literal, get_args

import yaml

Intent = Literal["order_status", "refund_status", "loyalty_balance", "unsubscribe", "talk_to_person", "out_of_scope"]
INTENTS: tuple[str, ...] = get_args(Intent)
NEEDS_IDENTITY: frozenset[str] = frozenset({"order_status", "refund_status", "loyalty_balance"})
"""Answered only to a visitor the shop's back end vouched for (unsubscribing is offered to anyone)."""
OUT_OF_SCOPE = "out_of_scope"
ORDER_NUMBER = re.compile(r"(?<![\w-])#?([A-Za-z]{0,4}-?\d{3,})(?![\w-])")
"""An order number as customers write it: ``10442``, ``#10442``, ``ORD-10442``."""


@cache
def intent_phrasings() -> dict[str, dict[str, list[str]]]:
    """intent → language → example phrasings (from ``intents.yaml``)."""
    loaded = yaml.safe_load(files("ecrm_interaction.assistant").joinpath("intents.yaml").read_text())["intents"]
    unknown = set(loaded) ^ set(INTENTS)
    if unknown:
        raise RuntimeError(f"intents.yaml and INTENTS disagree: {sorted(unknown)}")
    return {
        name: {lang: [str(p) for p in phrasings] for lang, phrasings in by_lang.items()}
        for name, by_lang in loaded.items()
    }


def order_numbers(text: str) -> list[str]:
    """The order numbers a question names, as written (without ``#``)."""
    return [found for found in ORDER_NUMBER.findall(text)]
