"""What the assistant itself says, per language (the articles say everything else). A missing
language falls back to English; :func:`say` formats with the visitor's locale (babel)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_currency

PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hi! I'm the shop's automated assistant. Ask me about delivery, returns, sizes or your order.",
        "article": "This article answers it:",
        "not_sure": "I'm not sure I have the right answer to that. Would you like to talk to a person?",
        "need_identity": "To look at your orders, refunds or points, please sign in to the shop first, then ask me again.",
        "handed_off": "I've passed your conversation to our team: a person will answer you here.",
        "handed_off_closed": "I've passed your conversation to our team. They are back {back}: leave your email address and they'll answer you there too.",
        "contact_saved": "Thank you: our team will answer at {email}.",
        "no_orders": "I can't find any order on your account yet.",
        "unknown_order": "I can't find order {order} on your account. Your latest order is {latest}.",
        "order": "Your order {order} of {date} ({total}) {status}.",
        "order_tracking": "{carrier} tracking number: {tracking}.",
        "more_orders": "You have {count} more orders; name one by its number to ask about it.",
        "refund_done": "Order {order} was refunded {amount} on {date}.",
        "refund_none": "I can't see a refund for order {order} yet. Refunds are paid within 5 to 10 days of your return reaching us.",
        "loyalty": "You have {points} points; your tier is {tier}.",
        "loyalty_next": "{missing} more points take you to {next}.",
        "unsubscribe_link": "You can stop our marketing emails here: {link}",
        "unsubscribe_general": "Every email we send has an unsubscribe link at the bottom; one click stops them.",
        "rated": "Thank you for your rating!",
        "status_placed": "has been received and is being prepared",
        "status_created": "is being packed",
        "status_shipped": "has been shipped",
        "status_in_transit": "is on its way",
        "status_delivered": "was delivered",
        "status_returned": "was returned to us",
        "status_lost": "was reported lost by the carrier: our team will contact you",
        "status_since": "(updated {date})",
    },
    "de": {
        "greeting": "Hallo! Ich bin der automatische Assistent des Shops. Fragen Sie mich zu Lieferung, Rücksendung, Größen oder Ihrer Bestellung.",
        "article": "Dieser Artikel beantwortet es:",
        "not_sure": "Ich bin nicht sicher, ob ich darauf die richtige Antwort habe. Möchten Sie mit einem Menschen sprechen?",
        "need_identity": "Um Ihre Bestellungen, Erstattungen oder Punkte anzusehen, melden Sie sich bitte zuerst im Shop an und fragen Sie mich dann noch einmal.",
        "handed_off": "Ich habe Ihr Gespräch an unser Team weitergegeben: Ein Mensch antwortet Ihnen hier.",
        "handed_off_closed": "Ich habe Ihr Gespräch an unser Team weitergegeben. Es ist {back} wieder da: Hinterlassen Sie Ihre E-Mail-Adresse, dann antwortet es Ihnen auch dort.",
        "contact_saved": "Danke: Unser Team antwortet an {email}.",
        "no_orders": "Ich finde noch keine Bestellung in Ihrem Konto.",
        "unknown_order": "Ich finde die Bestellung {order} nicht in Ihrem Konto. Ihre letzte Bestellung ist {latest}.",
        "order": "Ihre Bestellung {order} vom {date} ({total}) {status}.",
        "order_tracking": "Sendungsnummer bei {carrier}: {tracking}.",
        "more_orders": "Sie haben {count} weitere Bestellungen; nennen Sie die Nummer, um nach einer zu fragen.",
        "refund_done": "Die Bestellung {order} wurde am {date} mit {amount} erstattet.",
        "refund_none": "Ich sehe noch keine Erstattung für die Bestellung {order}. Erstattungen erfolgen innerhalb von 5 bis 10 Tagen, nachdem Ihre Rücksendung bei uns eingetroffen ist.",
        "loyalty": "Sie haben {points} Punkte; Ihre Stufe ist {tier}.",
        "loyalty_next": "Mit {missing} weiteren Punkten erreichen Sie {next}.",
        "unsubscribe_link": "Hier können Sie unsere Werbe-E-Mails abbestellen: {link}",
        "unsubscribe_general": "Jede unserer E-Mails hat unten einen Abmeldelink; ein Klick genügt.",
        "rated": "Danke für Ihre Bewertung!",
        "status_placed": "ist eingegangen und wird vorbereitet",
        "status_created": "wird gerade verpackt",
        "status_shipped": "wurde versandt",
        "status_in_transit": "ist unterwegs",
        "status_delivered": "wurde zugestellt",
        "status_returned": "wurde an uns zurückgeschickt",
        "status_lost": "wurde vom Versanddienst als verloren gemeldet: Unser Team meldet sich bei Ihnen",
        "status_since": "(Stand {date})",
    },
    "es": {
        "greeting": "¡Hola! Soy el asistente automático de la tienda. Pregúntame sobre envíos, devoluciones, tallas o tu pedido.",
        "article": "Este artículo lo responde:",
        "not_sure": "No estoy seguro de tener la respuesta correcta. ¿Quieres hablar con una persona?",
        "need_identity": "Para consultar tus pedidos, reembolsos o puntos, inicia sesión en la tienda y vuelve a preguntarme.",
        "handed_off": "He pasado tu conversación a nuestro equipo: una persona te responderá aquí.",
        "handed_off_closed": "He pasado tu conversación a nuestro equipo. Vuelve {back}: deja tu correo electrónico y también te responderá allí.",
        "contact_saved": "Gracias: nuestro equipo te responderá en {email}.",
        "no_orders": "Todavía no encuentro ningún pedido en tu cuenta.",
        "unknown_order": "No encuentro el pedido {order} en tu cuenta. Tu último pedido es {latest}.",
        "order": "Tu pedido {order} del {date} ({total}) {status}.",
        "order_tracking": "Número de seguimiento de {carrier}: {tracking}.",
        "more_orders": "Tienes {count} pedidos más; dime su número para preguntar por uno.",
        "refund_done": "El pedido {order} se reembolsó ({amount}) el {date}.",
        "refund_none": "Todavía no veo un reembolso del pedido {order}. Los reembolsos se pagan entre 5 y 10 días después de recibir tu devolución.",
        "loyalty": "Tienes {points} puntos; tu nivel es {tier}.",
        "loyalty_next": "Con {missing} puntos más llegas a {next}.",
        "unsubscribe_link": "Puedes dejar de recibir nuestros correos de marketing aquí: {link}",
        "unsubscribe_general": "Cada correo nuestro tiene un enlace para darte de baja al final; basta un clic.",
        "rated": "¡Gracias por tu valoración!",
        "status_placed": "se ha recibido y se está preparando",
        "status_created": "se está empaquetando",
        "status_shipped": "ha sido enviado",
        "status_in_transit": "está en camino",
        "status_delivered": "fue entregado",
        "status_returned": "nos fue devuelto",
        "status_lost": "fue declarado perdido por el transportista: nuestro equipo se pondrá en contacto contigo",
        "status_since": "(actualizado el {date})",
    },
    "fr": {
        "greeting": "Bonjour ! Je suis l'assistant automatique de la boutique. Posez-moi vos questions sur la livraison, les retours, les tailles ou votre commande.",
        "article": "Cet article y répond :",
        "not_sure": "Je ne suis pas sûr d'avoir la bonne réponse. Voulez-vous parler à une personne ?",
        "need_identity": "Pour consulter vos commandes, remboursements ou points, connectez-vous d'abord à la boutique, puis reposez-moi la question.",
        "handed_off": "J'ai transmis votre conversation à notre équipe : une personne vous répondra ici.",
        "handed_off_closed": "J'ai transmis votre conversation à notre équipe. Elle est de retour {back} : laissez votre adresse e-mail et elle vous répondra aussi par e-mail.",
        "contact_saved": "Merci : notre équipe vous répondra à {email}.",
        "no_orders": "Je ne trouve encore aucune commande sur votre compte.",
        "unknown_order": "Je ne trouve pas la commande {order} sur votre compte. Votre dernière commande est {latest}.",
        "order": "Votre commande {order} du {date} ({total}) {status}.",
        "order_tracking": "Numéro de suivi {carrier} : {tracking}.",
        "more_orders": "Vous avez {count} autres commandes ; donnez son numéro pour poser une question sur l'une d'elles.",
        "refund_done": "La commande {order} a été remboursée ({amount}) le {date}.",
        "refund_none": "Je ne vois pas encore de remboursement pour la commande {order}. Les remboursements sont versés 5 à 10 jours après réception de votre retour.",
        "loyalty": "Vous avez {points} points ; votre niveau est {tier}.",
        "loyalty_next": "Encore {missing} points et vous passez au niveau {next}.",
        "unsubscribe_link": "Vous pouvez arrêter nos e-mails marketing ici : {link}",
        "unsubscribe_general": "Chacun de nos e-mails contient un lien de désinscription en bas ; un clic suffit.",
        "rated": "Merci pour votre note !",
        "status_placed": "a été reçue et est en préparation",
        "status_created": "est en cours d'emballage",
        "status_shipped": "a été expédiée",
        "status_in_transit": "est en route",
        "status_delivered": "a été livrée",
        "status_returned": "nous a été retournée",
        "status_lost": "a été déclarée perdue par le transporteur : notre équipe va vous contacter",
        "status_since": "(mis à jour le {date})",
    },
}
LANGUAGES: tuple[str, ...] = tuple(PHRASES)


def say(language: str, key: str, **values: Any) -> str:
    """The phrase ``key`` in ``language`` (else English), with ``values`` formatted for its
    locale: datetimes as dates, ``(amount, currency)`` pairs as money."""
    phrases = PHRASES.get(language) or PHRASES["en"]
    locale = language if language in PHRASES else "en"
    shown = {name: _shown(value, locale) for name, value in values.items()}
    return phrases.get(key, PHRASES["en"][key]).format(**shown)


def _shown(value: Any, locale: str) -> str:
    if isinstance(value, datetime):
        return format_date(value, format="medium", locale=locale)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int | float):
        return format_currency(value[0], value[1], locale=locale)
    return str(value)


def when_back(at: datetime, language: str) -> str:
    """When people are back, for ``handed_off_closed``: a day and time in the visitor's locale."""
    locale = language if language in PHRASES else "en"
    return format_datetime(at, format="EEEE HH:mm", locale=locale, tzinfo=at.tzinfo)
