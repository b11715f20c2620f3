"""One consistent, deterministic world of customers seen by all five source systems.

The same customer_id appears in Snowflake (profile, orders), the CRM (contact), Redshift (web
sessions) and Kafka (events), so gold can join them. ``generation`` 2 is the world a little
later: new customers, orders, sessions and events, changed CRM records, more FX days; loading
generation 1 and then 2 shows every incremental strategy at work.

A configurable share of records is dirty on purpose, in the ways real sources are: null and
malformed emails, duplicate keys, late and out-of-order updates, unknown extra columns, malformed
JSON, dates in mixed formats, several currencies. Each dirty record says how it is dirty in
``dirty`` counters, so tests can check that every one is loaded or quarantined.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

from lakehouse.stack.sample_data import fx

COUNTRIES = ["US", "GB", "DE", "FR", "JP", "CH", "CA", "AU", "SE", "BR", "IN"]
COUNTRY_CURRENCY = {
    "US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "JP": "JPY", "CH": "CHF",
    "CA": "CAD", "AU": "AUD", "SE": "SEK", "BR": "BRL", "IN": "INR",
}  # fmt: skip
FIRST = ["Ada", "Alan", "Grace", "Linus", "Edsger", "Barbara", "Ken", "Margaret", "Guido",
         "Anita", "Dennis", "Frances", "John", "Radia", "Tim", "Shafi", "Donald", "Sophie",
         "Yukihiro", "Lin"]  # fmt: skip
LAST = ["Lovelace", "Turing", "Hopper", "Torvalds", "Dijkstra", "Liskov", "Thompson", "Hamilton",
        "van Rossum", "Borg", "Ritchie", "Allen", "Backus", "Perlman", "Berners-Lee", "Goldwasser",
        "Knuth", "Wilson", "Matsumoto", "Chen"]  # fmt: skip
CATEGORIES = ["books", "electronics", "garden", "kitchen", "sports", "toys", "office", "music"]
SEGMENTS = ["enterprise", "mid_market", "smb", "consumer"]
OWNERS = ["alice@corp.example", "bob@corp.example", "carol@corp.example", "dan@corp.example"]
DEVICES = ["desktop", "mobile", "tablet"]
BROWSERS = ["chrome", "firefox", "safari", "edge"]
PAGES = ["/", "/products", "/products/{cat}", "/products/{cat}/{sku}", "/cart", "/checkout",
         "/account/orders", "/search", "/help/shipping"]  # fmt: skip
EVENT_TYPES = ["click", "click", "click", "checkout_started", "order_placed"]
# Half the order_placed events come from producers already on the event's v2 (a rolling upgrade:
# old and new instances side by side), which adds the payment method and renames currency to
# currency_code, still sending currency for v1 readers (ingestion/event_schemas/order_placed).
ORDER_V2_SHARE = 0.5
PAYMENT_METHODS = ["card", "card", "card", "paypal", "bank_transfer", "gift_card", None]
DATE_FORMATS = ["%Y-%m-%d", "%d/%m/%Y", "%B %d, %Y", "%Y%m%d", "%Y-%m-%dT%H:%M:%SZ"]

# How much the world grows from generation 1 to 2.
GROWTH = {"customers": 0.05, "orders": 0.10, "sessions": 0.10, "events": 0.10, "crm_changes": 0.10}
FX_DAYS_PER_GENERATION = 7


@dataclass
class World:
    seed: int = 42
    scale: float = 0.05
    dirty_share: float = 0.03
    start_date: date = date(2025, 1, 1)
    days: int = 60
    generation: int = 1
    currencies: list[str] = field(default_factory=lambda: ["EUR", "GBP", "JPY", "CHF", "CAD"])
    dirty: Counter = field(default_factory=Counter)

    # ---- sizes -------------------------------------------------------------------------------
    def _n(self, base: int, growth_key: str | None = None) -> int:
        n = max(1, round(base * self.scale))
        if growth_key and self.generation >= 2:
            n += max(1, round(n * GROWTH[growth_key]))
        return n

    @property
    def n_customers(self) -> int:
        return self._n(10_000, "customers")

    @property
    def n_products(self) -> int:
        return max(20, round(200 * min(self.scale, 1) ** 0.5))

    @property
    def n_orders(self) -> int:
        return self._n(100_000, "orders")

    @property
    def n_sessions(self) -> int:
        return self._n(30_000, "sessions")

    @property
    def n_events(self) -> int:
        return self._n(1_000_000, "events")

    @property
    def end_date(self) -> date:
        """Last day of the world: generation 2 is a week later."""
        extra = FX_DAYS_PER_GENERATION * (self.generation - 1)
        return self.start_date + timedelta(days=self.days - 1 + extra)

    @property
    def gen1_end_date(self) -> date:
        return self.start_date + timedelta(days=self.days - 1)

    @property
    def as_of(self) -> datetime:
        """When this generation was taken: the end of its last day, in UTC."""
        return datetime.combine(self.end_date, datetime.max.time(), UTC).replace(microsecond=0)

    # ---- helpers -----------------------------------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random(f"{self.seed}:" + ":".join(map(str, parts)))

    def _ts(
        self, rng: random.Random, first: date | None = None, last: date | None = None
    ) -> datetime:
        first, last = first or self.start_date, last or self.end_date
        begin = datetime.combine(first, datetime.min.time(), UTC)
        span = int((datetime.combine(last, datetime.max.time(), UTC) - begin).total_seconds())
        return begin + timedelta(seconds=rng.randrange(max(span, 1)))

    def _is_dirty(self, rng: random.Random) -> bool:
        return rng.random() < self.dirty_share

    def _generation_window(self, rng: random.Random, index: int, n_gen1: int) -> datetime:
        """Records created in generation 2 fall in its extra week; others in the first window."""
        if index > n_gen1:
            first = self.start_date + timedelta(days=self.days)
            return self._ts(rng, first, self.end_date)
        return self._ts(rng, self.start_date, self.gen1_end_date)

    @cached_property
    def _gen1_world(self) -> World:
        return self if self.generation == 1 else replace_generation(self, 1)

    def _gen1(self, attr: str) -> int:
        return getattr(self._gen1_world, attr)

    def _as_of(self, index: int, n_gen1: int) -> World:
        """The world whose sizes an entity's draws use: generation 1's for entities that exist
        in generation 1, so they come out identical in every later generation."""
        return self._gen1_world if index <= n_gen1 else self

    # ---- Snowflake ---------------------------------------------------------------------------
    def name(self, customer_id: int) -> tuple[str, str]:
        rng = self._rng("name", customer_id)
        return rng.choice(FIRST), rng.choice(LAST)

    def email(self, customer_id: int) -> str:
        """The customer's clean email, the same in every source system."""
        first, last = self.name(customer_id)
        return f"{first}.{last}.{customer_id}@example.com".replace(" ", "").lower()

    def customer_country(self, customer_id: int) -> str:
        return self._rng("country", customer_id).choice(COUNTRIES)

    @cached_property
    def customers(self) -> list[dict]:
        rows, n1 = [], self._gen1("n_customers")
        for cid in range(1, self.n_customers + 1):
            rng = self._rng("customer", cid)
            created = self._generation_window(rng, cid, n1)
            first, last = self.name(cid)
            # Snowflake keeps emails as typed: padded and mixed case; silver normalises them.
            email = f" {self.email(cid).title()} " if rng.random() < 0.3 else self.email(cid)
            country = self.customer_country(cid)
            row = {
                "customer_id": cid,
                "email": email,
                "first_name": first,
                "last_name": last,
                "country": country,
                "phone": f"+1-555-{rng.randrange(10**7):07d}",
                "signup_date": created.strftime(rng.choice(DATE_FORMATS)),
                "updated_at": created,
            }
            if self._is_dirty(rng):
                kind = rng.choice(["null_email", "bad_email", "duplicate", "country_name"])
                self.dirty[f"customers.{kind}"] += 1
                if kind == "null_email":
                    row["email"] = None
                elif kind == "bad_email":
                    row["email"] = f"{first}.{last}@@example"
                elif kind == "country_name":
                    row["country"] = {"US": "United States", "GB": "u.k."}.get(
                        country, country.lower()
                    )
                else:  # an older copy of the same customer: dedup must keep the latest
                    rows.append({**row, "email": f"old.{cid}@example.com",
                                 "updated_at": created - timedelta(days=30)})  # fmt: skip
            rows.append(row)
        return rows

    @cached_property
    def products(self) -> list[dict]:
        rows = []
        for pid in range(1, self.n_products + 1):
            rng = self._rng("product", pid)
            category = rng.choice(CATEGORIES)
            rows.append({
                "product_id": pid,
                "sku": f"{category[:3].upper()}-{pid:05d}",
                "name": f"{rng.choice(['Basic', 'Pro', 'Ultra', 'Mini'])} {category} item {pid}",
                "category": category,
                "list_price": round(rng.uniform(2, 500), 2),
                "updated_at": datetime.combine(self.start_date, datetime.min.time(), UTC),
            })  # fmt: skip
        return rows

    def _order(self, oid: int, n1: int) -> tuple[dict, list[dict]]:
        rng = self._rng("order", oid)
        cid = rng.randrange(1, self._as_of(oid, n1).n_customers + 1)
        placed = self._generation_window(rng, oid, n1)
        currency = COUNTRY_CURRENCY[self.customer_country(cid)]
        if currency not in self.currencies and currency != "USD":
            currency = "USD"
        order = {
            "order_id": oid,
            "customer_id": cid,
            "order_ts": placed,
            "status": rng.choice(["placed", "shipped", "delivered", "delivered", "returned"]),
            "currency": currency,
            "updated_at": placed,
        }
        lines = []
        for line_no in range(1, rng.randint(1, 4) + 1):
            pid = rng.randrange(1, self.n_products + 1)
            usd_price = self.products[pid - 1]["list_price"]
            lines.append({
                "order_line_id": oid * 10 + line_no,
                "order_id": oid,
                "product_id": pid,
                "quantity": rng.randint(1, 5),
                "unit_price": round(usd_price * fx.rate(placed.date(), currency), 2),
                "currency": currency,
            })  # fmt: skip
        if self._is_dirty(rng):
            kind = rng.choice(["orphan_customer", "null_currency", "negative_quantity"])
            self.dirty[f"orders.{kind}"] += 1
            if kind == "orphan_customer":
                order["customer_id"] = 900_000_000 + oid  # no such customer, ever
            elif kind == "null_currency":
                order["currency"] = None
            else:
                lines[0]["quantity"] = -lines[0]["quantity"]
        return order, lines

    @cached_property
    def _orders_and_lines(self) -> tuple[list[dict], list[dict]]:
        orders, lines, n1 = [], [], self._gen1("n_orders")
        for oid in range(1, self.n_orders + 1):
            order, order_lines = self._order(oid, n1)
            orders.append(order)
            lines.extend(order_lines)
        return orders, lines

    @property
    def orders(self) -> list[dict]:
        return self._orders_and_lines[0]

    @property
    def order_lines(self) -> list[dict]:
        return self._orders_and_lines[1]

    # ---- CRM ---------------------------------------------------------------------------------
    @cached_property
    def crm_accounts(self) -> list[dict]:
        rows = []
        for aid in range(1, max(1, self._gen1("n_customers") // 5) + 1):
            rng = self._rng("account", aid)
            rows.append({
                "account_id": aid,
                "name": f"{rng.choice(LAST)} {rng.choice(['Ltd', 'GmbH', 'Inc', 'AB', 'KK'])}",
                "segment": rng.choice(SEGMENTS),
                "owner": rng.choice(OWNERS),
                "country": rng.choice(COUNTRIES),
                "updated_at": self._ts(rng, self.start_date, self.gen1_end_date),
            })  # fmt: skip
        if self.generation >= 2:
            for row in self._changed(rows, "account"):
                row["segment"] = self._rng("account-change", row["account_id"]).choice(SEGMENTS)
        return rows

    @cached_property
    def crm_contacts(self) -> list[dict]:
        rows, n_accounts = [], len(self.crm_accounts)
        for cid in range(1, self.n_customers + 1):
            rng = self._rng("contact", cid)
            created = self._generation_window(rng, cid, self._gen1("n_customers"))
            row = {
                "contact_id": f"C{cid:07d}",
                "customer_id": cid,
                "account_id": rng.randrange(1, n_accounts + 1),
                "email": self.email(cid),
                "owner": rng.choice(OWNERS),
                "segment": rng.choice(SEGMENTS),
                "lifecycle_stage": rng.choice(["lead", "prospect", "customer", "customer"]),
                "updated_at": created + timedelta(hours=rng.randrange(1, 12)),
            }
            if self._is_dirty(rng):
                kind = rng.choice(["null_email", "unknown_column", "missing_key"])
                self.dirty[f"crm_contacts.{kind}"] += 1
                if kind == "null_email":
                    row["email"] = None
                elif kind == "unknown_column":
                    row["legacy_score"] = rng.randint(0, 100)
                else:
                    row["contact_id"] = None
            rows.append(row)
        if self.generation >= 2:
            for row in self._changed(rows, "contact"):
                rng = self._rng("contact-change", row["customer_id"])
                row["lifecycle_stage"] = "customer"
                row["owner"] = rng.choice(OWNERS)
        return rows

    def personal_data(self) -> set[str]:
        """Every personal value seeded into the sources (emails, names, phones), trimmed and
        lower-cased: what must never leave bronze in clear (tests/test_pii.py)."""
        values: set[str | None] = set()
        for c in self.customers:
            values |= {c["email"], c["first_name"], c["last_name"], c["phone"],
                       f"{c['first_name']} {c['last_name']}"}  # fmt: skip
        for contact in self.crm_contacts:
            values |= {contact["email"], contact["owner"]}
        values |= {account["owner"] for account in self.crm_accounts}
        return {v.strip().lower() for v in values if v}

    def _changed(self, rows: list[dict], entity: str) -> list[dict]:
        """Records changed in generation 2; some changes arrive late (updated_at in the past)."""
        rng = self._rng("changes", entity)
        changed = rng.sample(rows, max(1, round(len(rows) * GROWTH["crm_changes"])))
        first_new_day = self.start_date + timedelta(days=self.days)
        for row in changed:
            if rng.random() < self.dirty_share * 3:
                # late, out-of-order update: stamped 2 hours before the generation-1 cut-off
                row["updated_at"] = datetime.combine(
                    first_new_day, datetime.min.time(), UTC
                ) - timedelta(hours=2)
                self.dirty[f"crm_{entity}s.late_update"] += 1
            else:
                row["updated_at"] = self._ts(rng, first_new_day, self.end_date)
        return changed

    # ---- Redshift (web behaviour) ------------------------------------------------------------
    def url(self, rng: random.Random) -> str:
        page = rng.choice(PAGES)
        cat = rng.choice(CATEGORIES)
        path = page.format(
            cat=cat, sku=f"{cat[:3].upper()}-{rng.randrange(1, self.n_products + 1):05d}"
        )
        params = []
        if rng.random() < 0.4:
            params.append(f"utm_source={rng.choice(['google', 'newsletter', 'partner'])}")
        if rng.random() < 0.3:
            params.append(f"q={rng.choice(['lamp', 'usb+cable', 'garden%20hose', 'book'])}")
        if rng.random() < 0.2:
            params.append(f"page={rng.randint(1, 5)}")
        return "https://shop.example.com" + path + ("?" + "&".join(params) if params else "")

    def web(self) -> tuple[list[tuple], list[tuple]]:
        """(sessions, page_views) rows in table column order, ids increasing with time of load."""
        sessions, views, n1 = [], [], self._gen1("n_sessions")
        for sid in range(1, self.n_sessions + 1):
            rng = self._rng("session", sid)
            started = self._generation_window(rng, sid, n1)
            sizes = self._as_of(sid, n1)
            customer = rng.randrange(1, sizes.n_customers + 1) if rng.random() < 0.8 else None
            n_views = rng.randint(1, 9)
            t = started
            for view_no in range(n_views):
                t += timedelta(seconds=rng.randint(5, 300))
                referrer = rng.choice(
                    [None, "https://www.google.com/", "https://news.example.org/"]
                )
                views.append((sid * 100 + view_no, sid, customer, self.url(rng), t, referrer))
            sessions.append((sid, customer, rng.choice(DEVICES), rng.choice(BROWSERS), started, t))
        return sessions, views

    # ---- Kafka events ------------------------------------------------------------------------
    def events(self, first: int = 1) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
        """(key, value, headers) messages from event number ``first``; some malformed or
        duplicated. The ``schema_version`` header declares the event's version (1, or 2 for a
        share of orders, ``ORDER_V2_SHARE``), drawn from a random stream of its own so that every
        other field is what it was before events had versions."""
        n1 = self._gen1("n_events")
        for eid in range(first, self.n_events + 1):
            rng = self._rng("event", eid)
            sizes = self._as_of(eid, n1)
            cid = rng.randrange(1, sizes.n_customers + 1)
            kind = rng.choice(EVENT_TYPES)
            at = self._generation_window(rng, eid, n1)
            event = {
                "event_id": f"evt-{self.seed}-{eid:09d}",
                "event_type": kind,
                "customer_id": cid,
                "event_time": at.isoformat().replace("+00:00", "Z"),
                "session_id": rng.randrange(1, sizes.n_sessions + 1),
                "order_id": (
                    rng.randrange(1, sizes.n_orders + 1) if kind == "order_placed" else None
                ),
                "page_url": self.url(rng) if kind == "click" else None,
                "amount": round(rng.uniform(5, 800), 2) if kind != "click" else None,
                "currency": COUNTRY_CURRENCY[self.customer_country(cid)]
                if kind != "click"
                else None,
            }
            version = "1"
            if kind == "order_placed":
                upgraded = self._rng("event_version", eid)
                if upgraded.random() < ORDER_V2_SHARE:
                    version = "2"
                    event["currency_code"] = event["currency"]
                    event["payment_method"] = upgraded.choice(PAYMENT_METHODS)
            headers = [("schema_version", version.encode())]
            value = json.dumps(event)
            if self._is_dirty(rng):
                dirty = rng.choice(["malformed_json", "duplicate", "late", "unknown_column"])
                self.dirty[f"events.{dirty}"] += 1
                if dirty == "malformed_json":
                    value = value[: len(value) // 2]
                elif dirty == "duplicate":
                    # delivered twice, as at-least-once does
                    yield str(cid), value.encode(), headers
                elif dirty == "late":
                    event["event_time"] = (
                        (at - timedelta(days=3)).isoformat().replace("+00:00", "Z")
                    )
                    value = json.dumps(event)
                else:
                    event["experiment"] = "checkout-v2"
                    value = json.dumps(event)
            yield str(cid), value.encode(), headers

    # ---- FX ----------------------------------------------------------------------------------
    def fx_rate(self, day: date, quote: str, base: str = "USD") -> float:
        """Generation 2 revises the last business day of generation 1 (publishers do)."""
        value = fx.rate(day, quote, base, self.seed)
        revised_day = fx.published_day(self.start_date + timedelta(days=self.days - 1))
        if self.generation >= 2 and day == revised_day:
            value = round(value * 1.01, 6)
        return value


def replace_generation(world: World, generation: int) -> World:
    """The same world at another generation (a fresh object: caches are per generation)."""
    return World(world.seed, world.scale, world.dirty_share, world.start_date, world.days,
                 generation, list(world.currencies))  # fmt: skip
