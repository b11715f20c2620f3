"""What a lake home was filled with, remembered, so a command with other settings is refused.

A lake home's bronze tables, dlt state and local source systems hold one sample world (seed,
scale, dirty share, start date, days, currencies) read from one set of source systems. Loading
another world or another system into it does not fail: it mixes, silently (a scale-1 Snowflake
snapshot replaced by a scale-0.05 one, CRM watermarks of one world filtering the other). So the
first load writes ``<home>/home.json``, and every command that seeds or loads compares the
settings it runs with against it first, and stops, touching nothing, naming each difference and
the ways on: the home's settings, another home, a fresh start, or ``lakehouse home adopt``.

Source systems are recorded by what identifies them (scheme, host, port, database or path),
never with user names, passwords, tokens or query parameters.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ingestion import locations, registry
from lakehouse.core.config import REPO_ROOT, Settings
from lakehouse.stack import source_systems as local_systems

LOCAL = "local stand-in"
# The variable that overrides a sample-world setting, if any (the others are lakehouse.yml's).
WORLD_SETTINGS = {
    "seed": None,
    "scale": "LAKEHOUSE_SCALE",
    "dirty_share": "LAKEHOUSE_DIRTY_SHARE",
    "start_date": None,
    "days": None,
    "currencies": None,
}


class HomeMismatch(RuntimeError):
    """The command's settings contradict what the lake home holds; nothing was touched."""


@dataclass(frozen=True)
class Difference:
    setting: str
    home: object
    now: object
    back: str  # how to run with the home's value


def record_file(settings: Settings) -> Path:
    return settings.home / "home.json"


def read(settings: Settings) -> dict | None:
    path = record_file(settings)
    return json.loads(path.read_text()) if path.exists() else None


def identify(address: str, kind: str = "url") -> str:
    """What names a system, never a user name, password, token or query parameter: scheme
    (without the driver), host, port, and database or path. ``kind``: ``sqlalchemy`` (parsed as
    SQLAlchemy does, which allows any character in a password), ``brokers`` (host:port list)."""
    if kind == "sqlalchemy":
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(address)
        except ArgumentError:
            return "an unreadable SQLAlchemy URL"
        port = f":{url.port}" if url.port else ""
        database = f"/{url.database}" if url.database else ""
        return f"{url.get_backend_name()}://{url.host or ''}{port}{database}"
    parts = []
    for item in address.split(",") if kind == "brokers" else [address]:
        item = item.strip()
        split = urlsplit(item if "://" in item else f"//{item}")
        try:
            port = f":{split.port}" if split.port else ""
        except ValueError:  # not a number: not part of a name we can trust
            port = ""
        scheme = f"{split.scheme}://" if split.scheme else ""
        parts.append(f"{scheme}{split.hostname or ''}{port}{split.path.rstrip('/')}")
    return ",".join(sorted(parts))


def source_systems() -> dict[str, str]:
    """Each source system this process would read: a production identity or the stand-in.

    A system is named by its address as configured (ingestion/locations.py)."""
    systems = {}
    for name in registry.names():
        spec = registry.spec(name)
        address = locations.address(spec)
        systems[name] = identify(address, spec.identity) if address else LOCAL
    return systems


def sample_world(settings: Settings) -> dict[str, object]:
    sample = settings.sample_data
    return {
        "seed": sample.seed,
        "scale": sample.scale,
        "dirty_share": sample.dirty_share,
        "start_date": sample.start_date.isoformat(),
        "days": sample.days,
        "currencies": list(settings.sources.fx.currencies),
    }


def current(settings: Settings) -> dict:
    """The record this command would write. The sample world matters only where a local
    stand-in serves it; loads from production systems alone do not depend on it."""
    systems = source_systems()
    uses_world = LOCAL in systems.values()
    return {"sample_world": sample_world(settings) if uses_world else None,
            "source_systems": systems}  # fmt: skip


def _yml_key(key: str) -> str:
    return "sources.fx.currencies" if key == "currencies" else f"sample_data.{key}"


def differences(record: dict, now: dict) -> list[Difference]:
    """Each setting in which ``now`` contradicts the home's ``record``."""
    found = []
    home_world, now_world = record.get("sample_world"), now["sample_world"]
    if home_world is not None and now_world is not None:
        for key, variable in WORLD_SETTINGS.items():
            was, is_ = home_world.get(key), now_world[key]
            if was != is_:
                in_yml = f"{_yml_key(key)}: {was} in lakehouse.yml"
                back = f"{variable}={was}" if variable else in_yml
                found.append(Difference(_yml_key(key), was, is_, back))
    home_systems = record.get("source_systems", {})
    for name, is_ in now["source_systems"].items():
        was = home_systems.get(name, LOCAL)
        variable = locations.address_setting(registry.spec(name))
        if was != is_:
            back = f"{variable} unset" if was == LOCAL else f"{variable} pointing at {was}"
            found.append(Difference(f"source system {name}", was, is_, back))
    return found


def _ways_on(settings: Settings, back: list[str]) -> str:
    default_homes = {REPO_ROOT / ".lakehouse", REPO_ROOT / ".lakehouse-test"}
    clean = (
        "`make clean-data` (deletes .lakehouse and .lakehouse-test)"
        if settings.home in default_homes
        else f"delete {settings.home}"
    )
    return (
        "To go on, either\n"
        f"  - run with the home's settings: {', '.join(back)}\n"
        "  - or give the new settings a lake home of their own: LAKEHOUSE_HOME=<another folder>\n"
        f"  - or start this home again with the new settings: {clean}, then run the command\n"
        "  - or, only if the home's data do come from the new settings (the same system at a "
        "new address, say), record them: `lakehouse home adopt`"
    )


def check(settings: Settings) -> str | None:
    """Raise HomeMismatch if this command's settings contradict the home; touch nothing then.

    A home filled before homes remembered their settings gets the current ones recorded when
    its data show they match (returns a line saying so), and is refused when they cannot.
    """
    record, now = read(settings), current(settings)
    if record is None:
        if not holds_data(settings):
            return None  # nothing in it to contradict: the first load records its settings
        reason = _unverified(settings, now)
        if reason:
            raise HomeMismatch(
                f"lake home {settings.home} holds data but not the settings it was filled with "
                f"({record_file(settings).name} is missing), and {reason}; nothing was changed.\n"
                + _ways_on(settings, ["the settings the home was filled with"])
            )
        _write(settings, now)
        return (
            f"lake home {settings.home}: its local source systems hold the sample world of the "
            f"current settings; recorded them in {record_file(settings)}"
        )
    found = differences(record, now)
    if found:
        lines = "\n".join(f"  {d.setting}: the home has {d.home}, this command {d.now}"
                          for d in found)  # fmt: skip
        raise HomeMismatch(
            f"lake home {settings.home} was filled with other settings than this command's; "
            f"nothing was changed.\n{lines}\n" + _ways_on(settings, [d.back for d in found])
        )
    return None


def remember(settings: Settings) -> None:
    """Record this command's settings as the home's, before its first seed or load (call after
    ``check``: a home that has a record already has these settings)."""
    if read(settings) is None:
        _write(settings, current(settings))


def adopt(settings: Settings) -> tuple[dict | None, dict]:
    """Record the current settings as the home's whatever it held (``lakehouse home adopt``);
    return the record before and after."""
    before, now = read(settings), current(settings)
    _write(settings, now)
    return before, now


def _write(settings: Settings, record: dict) -> None:
    path = record_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)


def holds_data(settings: Settings) -> bool:
    """True once anything was seeded or loaded into the home (an engine or `make up` alone
    creates only empty folders and unseeded servers)."""
    return (
        bool(settings.bronze.dirs())
        or (settings.source_systems_dir / "generation.json").exists()
        or (settings.state_dir / "dlt").exists()
    )


def _unverified(settings: Settings, now: dict) -> str | None:
    """Why a home without a record cannot be shown to hold the current settings' world, or None
    when its local Snowflake data are exactly the world these settings generate."""
    production = [name for name, system in now["source_systems"].items() if system != LOCAL]
    if production:
        return (f"it cannot tell whether it was loaded from the systems this command reads "
                f"({', '.join(production)} from production)")  # fmt: skip
    generation = local_systems.seeded_generation(settings)
    snowflake = local_systems.snowflake_file(settings)
    if generation is None or not snowflake.exists():
        return "its local source systems were never seeded, so the data came from elsewhere"
    world = local_systems.world(settings, generation)
    # Read-only: checking a home must not change it.
    with contextlib.closing(sqlite3.connect(f"file:{snowflake}?mode=ro", uri=True)) as conn:
        customers = conn.execute(
            "select customer_id, email, signup_date from customers order by rowid"
        ).fetchall()
        expected = [(c["customer_id"], c["email"], c["signup_date"]) for c in world.customers]
        if customers != expected:
            return (f"its local Snowflake customers ({len(customers):,} rows) are not those of "
                    f"the current sample_data settings ({len(expected):,} rows)")  # fmt: skip
        orders = conn.execute(
            "select order_id, customer_id, currency, status from orders order by rowid"
        ).fetchall()
    expected = [(o["order_id"], o["customer_id"], o["currency"], o["status"]) for o in world.orders]
    if orders != expected:
        return "its local Snowflake orders are not those of the current sample_data settings"
    return None
