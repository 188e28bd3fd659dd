"""Every metric the interaction service exports, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

DECISIONS = Counter("ecrm_interaction_decisions_total", "Rule decisions, by outcome and reason.", ["outcome", "reason"])
SEND_SECONDS = Histogram("ecrm_interaction_send_seconds", "Time to hand one email to the SMTP server.")
CHANGES_CONSUMED = Counter("ecrm_interaction_profile_changes_total", "Profile changes consumed.")
DEAD_LETTERS = Counter("ecrm_interaction_dead_letters_total", "Profile changes sent to the dead-letter topic.")
