"""The interaction service's own events: marked by a Kafka header that no client can set.

The interaction service reports what it did (emails sent, decisions, cases, loyalty balances)
as events on ``ecrm.events``. It must not act on them again (a rule feeding on what rules did,
points for its own reports, an unsubscribe it already applied), but it must act on every
client's event, even one whose ``messageId`` looks like its own. The one definition of the mark:

* the interaction service produces its events with :func:`own_event_headers`
  (header :data:`PRODUCER_HEADER` = ``interaction``);
* the collector never sets that header: a client reaches ``ecrm.events`` only through the
  collector's HTTP routes, whose bodies and HTTP headers never become Kafka headers, so a
  client cannot claim the mark (whatever ``messageId`` or fields it sends);
* the aggregator reads the header (:func:`origin_of_headers`) on ``ecrm.events``, forwards it
  on ``ecrm.events.stitched``, and sets ``TriggerEvent.origin`` in ``ecrm.profile-changes``
  from it alone (never from the event's JSON);
* the interaction service fires no rule, changes no contact state and awards no points for a
  trigger whose ``origin`` is :attr:`EventOrigin.INTERACTION`.

The message ids of its own events still start with :data:`OWN_MESSAGE_ID_PREFIX`: a namespace
that keeps them apart from clients' ids (the pipeline deduplicates by message id), not a mark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

PRODUCER_HEADER = "ecrm-producer"
"""On ``ecrm.events`` and ``ecrm.events.stitched``: the pipeline service that produced the event
(``interaction``); absent on everything the collector produces."""


class EventOrigin(StrEnum):
    """Who an event on ``ecrm.events`` comes from."""

    CLIENT = "client"
    """A shop, a browser, a provider's webhook, a tracking link, an import: through the collector."""
    INTERACTION = "interaction"
    """The interaction service's own report of what it did."""


OWN_MESSAGE_ID_PREFIX = "ecrm-interaction-"
"""The prefix of the message ids the interaction service gives its events (see the module docstring)."""


def own_event_headers() -> list[tuple[str, str | bytes | None]]:
    """The Kafka headers the interaction service sends its events with."""
    return [(PRODUCER_HEADER, EventOrigin.INTERACTION.value.encode())]


def origin_of_headers(
    headers: Iterable[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None,
) -> EventOrigin:
    """The origin a record's headers (pairs, or a mapping) state: :attr:`EventOrigin.INTERACTION`
    only for the exact mark."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == PRODUCER_HEADER:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            return EventOrigin.INTERACTION if text == EventOrigin.INTERACTION.value else EventOrigin.CLIENT
    return EventOrigin.CLIENT
