"""The demo domain: customer-support requests and replies, written from templates with a seeded RNG.

Replies vary along the axes a support lead judges: tone (polite / neutral / rude), helpfulness (solves
the request / vague / answers another request), accuracy (right policy facts / wrong ones that sound
plausible) and length. The demo model is trained on this mix, so its samples differ in those same ways,
and `expert_score` can judge any reply by the phrase banks below (the simulated expert of benches/tests).

Everything is generated; nothing is user data. `random.Random(seed)` makes every corpus reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

NAMES = [
    "Maria",
    "James",
    "Aisha",
    "Chen",
    "Olga",
    "Daniel",
    "Priya",
    "Lucas",
    "Fatima",
    "Tom",
    "Yuki",
    "Sofia",
    "Omar",
    "Emma",
    "Kwame",
    "Ines",
    "Mateo",
    "Hannah",
    "Ravi",
    "Lena",
    "Noah",
    "Zara",
    "Ivan",
    "Grace",
]
PRODUCTS = [
    "headphones",
    "coffee maker",
    "backpack",
    "smartwatch",
    "desk lamp",
    "blender",
    "keyboard",
    "phone case",
    "running shoes",
    "tablet stand",
    "water bottle",
    "air purifier",
    "webcam",
    "electric kettle",
    "yoga mat",
    "bluetooth speaker",
    "office chair",
    "rice cooker",
    "travel mug",
    "hair dryer",
]
FEATURES = ["the camera", "my cart", "the settings page", "notifications", "the login screen", "payments", "search"]
AMOUNTS = ["$19.99", "$24.50", "$39.00", "$49.95", "$64.00", "$89.99", "$120.00", "$12.75"]


@dataclass
class Topic:
    key: str
    requests: list[str]
    """Request templates; slots: {product} {other} {order} {amount} {feature} {months}."""
    solutions: list[str]
    """Correct, complete answers (the facts a support lead checks are in `facts`)."""
    wrong: list[str]
    """Plausible but wrong answers: invented policies, wrong numbers, unsafe advice."""
    keywords: list[str]
    """Words that identify a request (or a reply) as being about this topic."""
    facts: list[str] = field(default_factory=list)
    """Phrases only a correct answer contains."""
    wrong_facts: list[str] = field(default_factory=list)
    """Phrases only a wrong answer contains."""
    empathy: str = "I understand how frustrating this is."


TOPICS = [
    Topic(
        "late_delivery",
        [
            "My order {order} still hasn't arrived. It was supposed to be here last week.",
            "Where is my package? Order {order} shows no update for days.",
            "I ordered a {product} ten days ago and it is still not here. Order number {order}.",
            "order {order} not delivered yet. what is going on",
            "Hello, can you tell me when order {order} will be delivered?",
        ],
        [
            "I checked order {order}: it left our warehouse and should arrive within 3 business days. "
            "You can follow it with the tracking link under Account > Orders.",
            "Your order {order} is on its way and should arrive within 3 business days. "
            "The tracking link is under Account > Orders.",
        ],
        [
            "Orders usually take 6 to 8 weeks, so please wait a little longer before contacting us.",
            "Your order {order} was delivered yesterday, so it must have been stolen from your door.",
        ],
        ["arrive", "delivered", "package", "tracking", "order"],
        facts=["3 business days", "tracking link"],
        wrong_facts=["6 to 8 weeks", "stolen"],
        empathy="I'm sorry your order is taking so long.",
    ),
    Topic(
        "refund",
        [
            "I want a refund for the {product} I bought. It is not what I expected.",
            "How do I get my money back for the {product}?",
            "Can I return my {product}? I changed my mind.",
            "I need a refund for order {order}, the {product} is useless.",
            "Is it too late to return a {product} I bought three weeks ago?",
        ],
        [
            "You can return the {product} within 30 days for a full refund. Print the free return label "
            "from Account > Orders, and once we receive it the refund reaches your card in 5 business days.",
            "Returns are free within 30 days. Use the return label under Account > Orders; the refund "
            "reaches your card 5 business days after the {product} arrives back with us.",
        ],
        [
            "Refunds are only possible after 90 days and we charge a $25 processing fee.",
            "We do not offer refunds on any product once it has been opened.",
        ],
        ["refund", "return", "money back"],
        facts=["30 days", "5 business days", "return label"],
        wrong_facts=["90 days", "processing fee", "do not offer refunds"],
        empathy="I'm sorry the {product} didn't work out for you.",
    ),
    Topic(
        "password_reset",
        [
            "I forgot my password and can't log in.",
            "I can't sign in to my account, it says my password is wrong.",
            "How do I reset my password?",
            "locked out of my account again!! password not working",
            "Hi, I think someone changed my password. I cannot access my account.",
        ],
        [
            "Click 'Forgot password' on the sign-in page and we will email you a reset link. "
            "The link is valid for 24 hours. Never share your password with anyone, including us.",
            "Use 'Forgot password' on the sign-in page; the reset link we email you is valid for 24 hours. "
            "We will never ask you for your password.",
        ],
        [
            "Please reply with your current password and your card number so we can reset it for you.",
            "Reset links are valid for 10 minutes only, so you will need to create a new account.",
        ],
        ["password", "log in", "sign in", "locked out", "account"],
        facts=["Forgot password", "24 hours"],
        wrong_facts=["current password and your card number", "10 minutes", "new account"],
        empathy="Being locked out is really annoying, I know.",
    ),
    Topic(
        "damaged_item",
        [
            "My {product} arrived broken.",
            "The {product} I received is damaged, the box was crushed.",
            "I just opened my order and the {product} is cracked. Order {order}.",
            "your {product} came broken. unacceptable",
            "The {product} was damaged in shipping. What can I do?",
        ],
        [
            "Please send us a photo of the damage and we will ship a free replacement {product} right away. "
            "You don't need to return the broken one.",
            "Send a photo of the damaged {product} and we'll ship a free replacement today; "
            "there is no need to send the broken one back.",
        ],
        [
            "Damage during shipping is the courier's responsibility, so please contact them yourself.",
            "You will need to pay for the replacement and we will refund it after 60 days.",
        ],
        ["broken", "damaged", "cracked", "replacement"],
        facts=["photo", "free replacement"],
        wrong_facts=["courier's responsibility", "60 days"],
        empathy="I'm really sorry your {product} arrived damaged.",
    ),
    Topic(
        "double_charge",
        [
            "I was charged twice for order {order}.",
            "Why do I see two payments of {amount} on my card?",
            "You took my money twice! {amount} two times for the same order.",
            "There is a duplicate charge of {amount} on my statement.",
            "hi, my bank shows two charges for order {order}, can you check",
        ],
        [
            "I can see two charges of {amount}. The second one is a temporary hold and disappears from your "
            "card within 3 business days. If it doesn't, we will refund it immediately.",
            "The second charge of {amount} is only a temporary authorization hold; it drops off within "
            "3 business days, and if it stays we refund it right away.",
        ],
        [
            "Both charges are correct because every order is billed twice for security.",
            "The duplicate charge will be returned as store credit in about 4 months.",
        ],
        ["charged twice", "two payments", "duplicate", "charge", "charges"],
        facts=["temporary", "3 business days"],
        wrong_facts=["billed twice", "store credit", "4 months"],
        empathy="Seeing a charge twice is worrying, I understand.",
    ),
    Topic(
        "cancel_subscription",
        [
            "How do I cancel my subscription?",
            "I want to cancel my membership, I don't use it anymore.",
            "Please cancel my plan immediately.",
            "stop charging me every month. cancel it",
            "Can I cancel my subscription before the next payment?",
        ],
        [
            "Go to Account > Subscription and choose Cancel. You keep access until the end of the current "
            "billing period and you won't be charged again.",
            "You can cancel any time under Account > Subscription. Access continues until the end of the "
            "billing period, and no further payments are taken.",
        ],
        [
            "Subscriptions can only be cancelled by sending us a letter by post, with a $10 cancellation fee.",
            "Cancelling deletes all your data immediately and you will still be charged for one more year.",
        ],
        ["cancel", "subscription", "membership", "plan"],
        facts=["Account > Subscription", "billing period"],
        wrong_facts=["letter by post", "cancellation fee", "one more year"],
        empathy="Sorry to see you go.",
    ),
    Topic(
        "change_address",
        [
            "I need to change the delivery address for order {order}.",
            "I moved last week. Can you send order {order} to my new address?",
            "Wrong address on my order {order}, please fix it!",
            "Is it possible to update the shipping address after ordering?",
            "Can you deliver my {product} to my office instead of my home?",
        ],
        [
            "I've updated the delivery address for order {order}, since it hasn't shipped yet. "
            "You'll get a confirmation email in a few minutes.",
            "Order {order} hasn't shipped yet, so I changed the address for you. A confirmation email is on its way.",
        ],
        [
            "Addresses can never be changed after an order is placed, so you will have to order again.",
            "I have changed the address, but this costs an extra $30 delivery fee.",
        ],
        ["address", "moved", "deliver", "shipping"],
        facts=["hasn't shipped", "confirmation email"],
        wrong_facts=["never be changed", "order again", "$30"],
        empathy="No problem, plans change.",
    ),
    Topic(
        "app_crash",
        [
            "The app crashes every time I open {feature}.",
            "Your app keeps closing when I try to use {feature}.",
            "app is broken. crashes on {feature}",
            "Since the last update the app freezes on {feature}.",
            "Hi, the app shuts down whenever I tap {feature}. Any idea?",
        ],
        [
            "Please update the app to the latest version and restart your phone. If it still crashes on "
            "{feature}, send us your phone model and we will investigate.",
            "Updating to the latest app version and restarting your phone fixes this in most cases. "
            "If {feature} still crashes, tell us your phone model so we can look into it.",
        ],
        [
            "Please delete your account and create a new one; that always fixes crashes.",
            "The app does not support {feature} on phones older than this year.",
        ],
        ["app", "crash", "crashes", "freezes", "closing", "update"],
        facts=["latest version", "phone model"],
        wrong_facts=["delete your account", "older than this year"],
        empathy="I'm sorry the app is giving you trouble.",
    ),
    Topic(
        "warranty",
        [
            "My {product} stopped working after {months} months.",
            "Is my {product} still under warranty? It broke after {months} months.",
            "The {product} I bought last year does not turn on anymore.",
            "{product} dead after {months} months. what now",
            "Can you repair my {product}? It stopped charging.",
        ],
        [
            "Your {product} has a 2-year warranty, so the repair is free. I've opened a warranty case and "
            "you'll receive a prepaid shipping label by email.",
            "The {product} is covered by our 2-year warranty. I've started a free repair and emailed you a "
            "prepaid shipping label.",
        ],
        [
            "The warranty only lasts 30 days, so we cannot help with this.",
            "Repairs under warranty cost $80 plus shipping.",
        ],
        ["warranty", "stopped working", "repair", "turn on", "broke"],
        facts=["2-year warranty", "prepaid shipping label"],
        wrong_facts=["only lasts 30 days", "$80"],
        empathy="It's disappointing when something stops working so soon.",
    ),
    Topic(
        "upgrade_plan",
        [
            "How do I upgrade to the Pro plan?",
            "I'd like more storage. Can I switch to a bigger plan?",
            "what does it cost to upgrade to pro",
            "Can I upgrade my plan in the middle of the month?",
            "Hi! I want the Pro features, how do I get them?",
        ],
        [
            "Open Settings > Plan and choose Pro. You only pay the prorated difference for the rest of "
            "this month, and the Pro features are active right away.",
            "Go to Settings > Plan and select Pro; the price difference is prorated for the rest of the "
            "month and the features unlock immediately.",
        ],
        [
            "Upgrades are only possible on the first day of the year.",
            "To upgrade you must cancel your current plan and wait 14 days.",
        ],
        ["upgrade", "pro", "plan", "storage"],
        facts=["Settings > Plan", "prorated"],
        wrong_facts=["first day of the year", "wait 14 days"],
        empathy="Great to hear you want to do more with us.",
    ),
    Topic(
        "wrong_item",
        [
            "I ordered a {product} but received a {other}.",
            "You sent me the wrong item. I got a {other} instead of my {product}.",
            "wrong product in my box, order {order}",
            "The package for order {order} contained someone else's {other}.",
            "This is not what I ordered, I wanted the {product}.",
        ],
        [
            "Sorry about the mix-up. We'll ship your {product} today, and you can return the {other} with "
            "the free label we'll email you.",
            "We'll send the correct {product} today at no cost, and email you a free label to return the {other}.",
        ],
        [
            "Please keep the {other}; we cannot send the {product} until you pay for it again.",
            "Wrong items cannot be exchanged, but you can sell it online.",
        ],
        ["wrong", "instead", "not what I ordered", "received", "mix-up", "someone else"],
        facts=["ship your", "free label", "correct"],
        wrong_facts=["pay for it again", "sell it online"],
        empathy="That's our mistake, and I'm sorry.",
    ),
    Topic(
        "invoice",
        [
            "I need an invoice for order {order}.",
            "Can you send me a receipt for my purchase? It's for my company.",
            "where can i download the invoice",
            "My accountant needs an invoice with VAT for order {order}.",
            "Hello, could I get a copy of the invoice for my {product}?",
        ],
        [
            "You can download the invoice for order {order} from Account > Orders > Invoice. "
            "I've also emailed you a copy.",
            "The invoice is available under Account > Orders > Invoice, and I've sent a copy to your email.",
        ],
        [
            "Invoices are only available by fax for a fee of $5 per page.",
            "We don't issue invoices for orders under $500.",
        ],
        ["invoice", "receipt", "VAT", "accountant"],
        facts=["Account > Orders > Invoice", "emailed"],
        wrong_facts=["by fax", "under $500"],
        empathy="Happy to help with the paperwork.",
    ),
]
TOPIC_BY_KEY = {t.key: t for t in TOPICS}

# tone phrase banks: greeting, empathy/opening, closing
POLITE_GREETINGS = [
    "Hi {name}, thank you for reaching out.",
    "Hello {name}, thanks for contacting us.",
    "Dear {name}, thank you for your message.",
    "Hi {name}!",
]
NEUTRAL_GREETINGS = ["Hello.", "Hi.", ""]
RUDE_OPENINGS = ["Look,", "Listen,", "As we already said,", "Obviously,", "Calm down."]
POLITE_CLOSINGS = [
    "Is there anything else I can help you with?",
    "Have a great day!",
    "Please let me know if you have any other questions.",
    "Thanks for your patience.",
]
NEUTRAL_CLOSINGS = ["Regards, Support.", "", "Best, the support team."]
RUDE_CLOSINGS = [
    "Please don't write to us again about this.",
    "Read the FAQ next time.",
    "That's all we can do.",
    "Not our problem.",
]
VAGUE = [
    "We are looking into it and will get back to you at some point.",
    "Thank you for your feedback, it has been forwarded to the relevant team.",
    "Please check our help center for more information.",
    "These things happen sometimes. Try again later.",
]
EXTRA = [
    "Our team is available Monday to Friday, 9am to 6pm.",
    "You can also reach us through the chat in the app.",
    "We are always working to improve our service.",
    "Your case number is in the confirmation email.",
    "Thank you for being a loyal customer.",
]

POLITE_MARKERS = [
    "thank you",
    "thanks",
    "sorry",
    "happy to help",
    "anything else",
    "great day",
    "patience",
    "i understand",
    "i know",
    "no problem",
]
RUDE_MARKERS = [
    "look,",
    "listen,",
    "obviously",
    "calm down",
    "don't write",
    "not our problem",
    "read the faq",
    "as we already said",
    "that's all we can do",
]
VAGUE_MARKERS = [
    "at some point",
    "forwarded to the relevant team",
    "check our help center",
    "try again later",
    "these things happen",
]

CUSTOMER_OPENERS = {
    "polite": ["Hi, ", "Hello, ", "Good morning, ", ""],
    "angry": ["This is ridiculous. ", "I'm very unhappy. ", "Seriously? ", ""],
    "neutral": ["", ""],
}
CUSTOMER_CLOSERS = {
    "polite": [" Thank you!", " Thanks in advance.", ""],
    "angry": [" Fix this now.", " I want an answer today.", ""],
    "neutral": ["", ""],
}


@dataclass
class Example:
    topic: str
    request: str
    reply: str
    tone: str = "polite"
    kind: str = "helpful"  # helpful | inaccurate | vague | off_topic
    length: str = "medium"


def _slots(rng: random.Random) -> dict[str, str]:
    product, other = rng.sample(PRODUCTS, 2)
    return {
        "name": rng.choice(NAMES),
        "product": product,
        "other": other,
        "order": str(rng.randint(10000, 99999)),
        "amount": rng.choice(AMOUNTS),
        "feature": rng.choice(FEATURES),
        "months": str(rng.randint(3, 20)),
    }


def _fill(template: str, slots: dict[str, str]) -> str:
    return template.format(**slots)


def make_request(
    rng: random.Random, topic: Optional[Topic] = None, slots: Optional[dict] = None
) -> tuple[Topic, str, dict]:
    """A customer request: (topic, text, slots)."""
    topic = topic or rng.choice(TOPICS)
    slots = slots or _slots(rng)
    mood = rng.choice(["polite", "polite", "angry", "neutral"])
    body = _fill(rng.choice(topic.requests), slots)
    text = rng.choice(CUSTOMER_OPENERS[mood]) + body + rng.choice(CUSTOMER_CLOSERS[mood])
    return topic, text.strip(), slots


def make_reply(rng: random.Random, topic: Topic, slots: dict, tone: str, kind: str, length: str) -> str:
    """One reply with the given tone, kind (helpful/inaccurate/vague/off_topic) and length."""
    parts: list[str] = []
    if tone == "polite":
        parts.append(_fill(rng.choice(POLITE_GREETINGS), slots))
        if length != "short" or rng.random() < 0.5:
            parts.append(_fill(topic.empathy, slots))
    elif tone == "neutral":
        parts.append(rng.choice(NEUTRAL_GREETINGS))
    else:
        parts.append(rng.choice(RUDE_OPENINGS))
    if kind == "helpful":
        parts.append(_fill(rng.choice(topic.solutions), slots))
    elif kind == "inaccurate":
        parts.append(_fill(rng.choice(topic.wrong), slots))
    elif kind == "vague":
        parts.append(rng.choice(VAGUE))
    else:  # off_topic: a correct answer to some other request
        other = rng.choice([t for t in TOPICS if t is not topic])
        parts.append(_fill(rng.choice(other.solutions), slots))
    if length == "long":
        parts.extend(rng.sample(EXTRA, 2))
    elif length == "medium" and rng.random() < 0.5:
        parts.append(rng.choice(EXTRA))
    if tone == "polite":
        parts.append(rng.choice(POLITE_CLOSINGS))
    elif tone == "neutral":
        parts.append(rng.choice(NEUTRAL_CLOSINGS))
    else:
        parts.append(rng.choice(RUDE_CLOSINGS))
    parts = [p for p in parts if p]
    for i in range(1, len(parts)):  # "Look, please ..." rather than "Look, Please ..."
        if parts[i - 1].endswith(",") and not parts[i].startswith(("I ", "I'")):
            parts[i] = parts[i][:1].lower() + parts[i][1:]
    return " ".join(parts)


def examples(n: int, seed: int = 0) -> Iterator[Example]:
    """n (request, reply) pairs; the mix of tones, kinds and lengths is what the demo model learns."""
    rng = random.Random(seed)
    for _ in range(n):
        topic, request, slots = make_request(rng)
        tone = rng.choices(["polite", "neutral", "rude"], weights=[5, 3, 2])[0]
        kind = rng.choices(["helpful", "inaccurate", "vague", "off_topic"], weights=[4, 2, 2, 2])[0]
        length = rng.choices(["short", "medium", "long"], weights=[3, 4, 3])[0]
        yield Example(topic.key, request, make_reply(rng, topic, slots, tone, kind, length), tone, kind, length)


def demo_prompts(n: int, seed: int = 1234) -> list[str]:
    """n distinct customer requests (a different seed from training, so most are new combinations)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    # cycle topics so every topic is represented evenly
    while len(out) < n:
        for topic in TOPICS:
            _, text, _ = make_request(rng, topic)
            if text not in seen:
                seen.add(text)
                out.append(text)
            if len(out) >= n:
                break
    rng.shuffle(out)
    return out


def classify_request(text: str) -> Optional[Topic]:
    """The topic a request is about, by keyword votes (None when nothing matches)."""
    low = text.lower()
    best, best_score = None, 0
    for topic in TOPICS:
        score = sum(1 for k in topic.keywords if k.lower() in low)
        score += 3 * sum(1 for r in topic.requests if _skeleton(r) and _skeleton(r) in _normal(low))
        if score > best_score:
            best, best_score = topic, score
    return best


def _normal(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower())


def _skeleton(template: str) -> str:
    """The longest literal piece of a request template (used to recognise it in text)."""
    pieces = re.split(r"\{[a-z]+\}", template.lower())
    return max(pieces, key=len).strip() if pieces else ""


def expert_score(request: str, reply: str) -> float:
    """A support lead's judgment as a number (higher is better): the simulated expert.

    + the request's own policy facts, polite tone; - invented policies (any topic's wrong facts), an
    answer to a different request, rudeness, vague non-answers, details that contradict the request
    (another order number or product), replies that are empty, rambling or cut off.
    """
    low = reply.lower()
    topic = classify_request(request)
    score = 0.0
    own = {f.lower() for f in topic.facts} if topic is not None else set()
    score += 2.0 * min(sum(1 for f in own if f in low), 2)
    if any(w.lower() in low for t in TOPICS for w in t.wrong_facts):
        score -= 4.0
    other_facts = {f.lower() for t in TOPICS if t is not topic for f in t.facts} - own
    if any(f in low for f in other_facts):
        score -= 3.0  # answers some other request
    score += 0.5 * min(sum(1 for m in POLITE_MARKERS if m in low), 3)
    score -= 1.5 * min(sum(1 for m in RUDE_MARKERS if m in low), 2)
    if any(m in low for m in VAGUE_MARKERS):
        score -= 2.0
    # details that contradict the request: an order number or product the customer never mentioned
    asked_orders = set(re.findall(r"\b\d{5}\b", request))
    if any(o not in asked_orders for o in re.findall(r"\b\d{5}\b", reply)):
        score -= 1.0
    req_low = request.lower()
    if any(p in low and p not in req_low for p in PRODUCTS if p not in ("other",)):
        score -= 1.0
    words = len(reply.split())
    if words < 5:
        score -= 2.0
    elif words > 90:
        score -= 1.0
    if reply.strip() and reply.strip()[-1] not in ".!?":
        score -= 1.0  # cut off mid-sentence
    return score
