"""Render messages with a customer's data (pure).

Templates run in Jinja2's immutable sandbox: no attribute escapes into Python internals, no
mutation of the data, no includes or imports (there is nothing to load), no string or list
repeated past 100,000 items and no power above 100 (memory bombs). Whatever a template does
wrong is a :class:`RenderError`, never another exception. HTML parts are autoescaped, so a
customer's name cannot inject markup. Undefined values render empty, so a missing trait never breaks a send: use
``{{ traits.firstName | default("there") }}``.

What a template sees: ``profile`` (the customer's profile), ``traits`` (its identify
traits), ``event`` (what triggered the rule), ``reason``, ``rule`` (``id``, ``name``),
``segments``, ``recommendations`` (products: ``product_id``, ``score``, ``source``),
``reward`` (``code``, for rules that issue one), ``loyalty`` (``points``, ``tier``) and
``unsubscribe_url``. Profile amounts render with two decimals (``200.00``); the ``money``
filter formats any amount, with a currency and locale if given (:func:`money`).

Tracking (:func:`add_tracking`): every http(s) link of the HTML part but the unsubscribe
link points at the collector's signed click redirect, and an open pixel closes the body. The signature names
the one URL a click may go to.
"""

from __future__ import annotations

import functools
import html
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from babel.core import UnknownLocaleError
from babel.numbers import format_currency, format_decimal
from jinja2 import ChainableUndefined, DictLoader, Template, TemplateError, TemplateSyntaxError, Undefined, meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic_core import PydanticCustomError

from ecrm_schemas.profile import CustomerProfile

if TYPE_CHECKING:
    from ecrm_interaction.engine.rules import TemplateSpec

MAX_REPEAT = 100_000
MAX_EXPONENT = 100
_TEMPLATE_FAULTS = (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, RecursionError)
"""What a bad template can raise (e.g. ``range()`` too large is an OverflowError, ``1/0``, ``'a' + 1``)."""


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"a power above {MAX_EXPONENT} is not allowed")
        if operator == "*":
            sized, times = (left, right) if isinstance(left, str | list | tuple) else (right, left)
            if isinstance(sized, str | list | tuple) and isinstance(times, int) and len(sized) * times > MAX_REPEAT:
                raise SecurityError(f"repeating past {MAX_REPEAT:,} items is not allowed")
        return super().call_binop(context, operator, left, right)


_CENT = Decimal("0.01")
MONEY_FIELDS = tuple(name for name, spec in CustomerProfile.model_fields.items() if spec.annotation is Decimal)
"""Profile amounts (``revenue``, ``refunded``): templates see them as Decimals rounded to cents."""


def money(value: Any, currency: Any = None, locale: str = "en") -> str:
    """The ``money`` filter: ``{{ x | money }}`` is ``1,234.50``; ``{{ x | money('EUR') }}`` is
    ``€1,234.50``; ``{{ x | money('EUR', 'de_DE') }}`` is ``1.234,50 €`` (Babel, CLDR data).
    Nothing (an undefined or empty value) renders empty; a value that is not a number fails."""
    if value is None or isinstance(value, Undefined) or value == "":
        return ""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"money: {str(value)[:40]!r} is not a number") from None
    if not amount.is_finite():
        raise ValueError("money: the amount is not a finite number")
    try:
        if currency and not isinstance(currency, Undefined):
            return format_currency(amount, str(currency).upper(), locale=locale)
        return format_decimal(amount, format="#,##0.00", locale=locale)
    except UnknownLocaleError as exc:
        raise ValueError(f"money: unknown locale {exc.identifier!r}") from None


def _amount(value: Any) -> Any:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return value
    return amount.quantize(_CENT) if amount.is_finite() else value


_NOTHING_TO_LOAD = DictLoader({})
_TEXT = _Sandbox(autoescape=False, undefined=ChainableUndefined, loader=_NOTHING_TO_LOAD)
_HTML = _Sandbox(autoescape=True, undefined=ChainableUndefined, loader=_NOTHING_TO_LOAD)
for _environment in (_TEXT, _HTML):
    _environment.filters["money"] = money


@functools.lru_cache(maxsize=256)
def _compiled(environment: _Sandbox, source: str) -> Template:
    """``source`` compiled once (Jinja compiles a string to Python each time it is given one,
    which costs more than rendering it); a compiled template renders safely in many threads."""
    return environment.from_string(source)


_LINK = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


class RenderError(ValueError):
    """The template could not be rendered (syntax error or a refused operation).

    ``part`` (``subject``, ``text``, ``html``), ``error`` (the class of the fault) and ``line``
    (in the part, when known) say where, without the data the message may hold: fit for logs.
    """

    def __init__(self, message: str, *, part: str | None = None, error: str = "", line: int | None = None) -> None:
        super().__init__(message)
        self.part, self.error, self.line = part, error, line

    @classmethod
    def of(cls, exc: BaseException, message: str, part: str | None = None) -> RenderError:
        line = exc.lineno if isinstance(exc, TemplateSyntaxError) else None
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == "<template>":  # Jinja maps a runtime fault to its template line
                line = frame.lineno
        return cls(message, part=part, error=type(exc).__name__, line=line)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


def message_context(
    payload: dict[str, Any],
    *,
    rule_id: str,
    recommendations: list[dict[str, Any]] | None = None,
    loyalty: dict[str, Any] | None = None,
    unsubscribe_url: str = "",
) -> dict[str, Any]:
    """The names a template sees, from an action's payload (see :mod:`.planning`)."""
    profile = dict(payload.get("profile") or {})
    for name in MONEY_FIELDS:
        if profile.get(name) is not None:
            profile[name] = _amount(profile[name])
    return {
        "profile": profile,
        "traits": profile.get("traits") or {},
        "event": payload.get("trigger") or {},
        "reason": payload.get("reason", ""),
        "rule": {"id": rule_id, "name": payload.get("rule_name", rule_id)},
        "segments": payload.get("segments") or [],
        "recommendations": recommendations or [],
        "reward": {"code": payload.get("reward_code")},
        "loyalty": loyalty or {},
        "unsubscribe_url": unsubscribe_url,
    }


def check_template(source: str) -> str:
    """``source`` if it compiles; else a ``template_syntax`` error naming the line (a pydantic
    validator's error: the API answers 422 with the field). Unknown filters count as errors."""
    try:
        _TEXT.from_string(source)
    except TemplateSyntaxError as exc:
        raise PydanticCustomError(
            "template_syntax",
            "template syntax error on line {line}: {error}",
            {"line": exc.lineno, "error": exc.message},
        ) from None
    return source


CONTEXT_NAMES = frozenset(message_context({}, rule_id=""))
"""The names a message template sees (:func:`message_context`)."""


def unknown_names(source: str) -> list[str]:
    """The names ``source`` uses that a message template is never given (a typo such as
    ``{{ trait.firstName }}`` renders empty rather than fail, so saving refuses it), sorted.
    The sandbox's own globals (``range``, ``namespace``...) and names the template sets are known."""
    try:
        used = meta.find_undeclared_variables(_TEXT.parse(source))
    except TemplateSyntaxError:
        return []  # reported by check_template
    return sorted(used - CONTEXT_NAMES - set(_TEXT.globals))


def render_text(source: str, context: dict[str, Any]) -> str:
    """A plain-text template (notifications, case subjects)."""
    try:
        return _compiled(_TEXT, source).render(context)
    except _TEMPLATE_FAULTS as exc:
        raise RenderError.of(exc, str(exc)) from exc


def render_email(template: TemplateSpec, context: dict[str, Any]) -> RenderedEmail:
    part = "subject"
    try:
        subject = _compiled(_TEXT, template.subject).render(context)
        part = "text"
        text = _compiled(_TEXT, template.text).render(context)
        part = "html"
        body = _compiled(_HTML, template.html).render(context) if template.html else None
    except _TEMPLATE_FAULTS as exc:
        raise RenderError.of(exc, f"template {template.id!r}: {exc}", part) from exc
    return RenderedEmail(subject=" ".join(subject.split()), text=text, html=body)


def add_tracking(
    email: RenderedEmail, click_url: Callable[[str], str], pixel_url: str, untracked: tuple[str, ...] = ()
) -> RenderedEmail:
    """The email with its HTML links going through the click redirect and an open pixel.

    Links starting with one of ``untracked`` (the unsubscribe pages) stay as they are: leaving
    a list is not a click, and must work without the collector.
    """
    if email.html is None:
        return email

    def tracked(match: re.Match[str]) -> str:
        target = html.unescape(match[3])
        if target.startswith(untracked):
            return match[0]
        return f"{match[1]}{match[2]}{html.escape(click_url(target), quote=True)}{match[2]}"

    body = _LINK.sub(tracked, email.html)
    pixel = f'<img src="{html.escape(pixel_url, quote=True)}" width="1" height="1" alt="" style="display:none">'
    body = _BODY_END.sub(lambda m: pixel + m[0], body, count=1) if _BODY_END.search(body) else body + pixel
    return RenderedEmail(email.subject, email.text, body)
