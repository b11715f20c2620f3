"""docs/deploy.md, the guide to running on a cluster, checked where a machine can check it.

The guide is written on paper (no EMR, Dataproc or Kubernetes here), so what it says about the
project itself must at least stay true: every variable it tells an operator to set is one the
project documents (or a tool's own), every dbt target, file and command it names exists, every
setting the local engine relies on is in its engine contract, and the ``cluster`` target it
describes connects in each authentication mode it offers.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from lakehouse.cli.parser import build_parser
from lakehouse.core.config import REPO_ROOT, EngineConfig, Settings, StorageConfig, load_settings
from lakehouse.stack import engine

GUIDE = REPO_ROOT / "docs" / "deploy.md"
CONFIGURATION = REPO_ROOT / "docs" / "configuration.md"
PROFILES = REPO_ROOT / "profiles" / "profiles.yml"
POM = REPO_ROOT / "engine" / "pom.xml"

# Variables the guide names that the project does not read itself: each tool documents its own.
THIRD_PARTY = {
    "AWS_ACCESS_KEY_ID": "AWS SDKs, delta-rs, s3a",
    "AWS_SECRET_ACCESS_KEY": "AWS SDKs, delta-rs, s3a",
    "AWS_SESSION_TOKEN": "AWS SDKs, delta-rs, s3a",
    "AWS_REGION": "AWS SDKs, delta-rs",
    "AWS_ENDPOINT_URL": "AWS SDKs, delta-rs (an S3-compatible store)",
    "AWS_S3_LOCKING_PROVIDER": "delta-rs (its DynamoDB locking provider)",
    "AWS_S3_ALLOW_UNSAFE_RENAME": "delta-rs (named only to say the platform never sets it)",
    "GOOGLE_APPLICATION_CREDENTIALS": "Google's client libraries",
    "OPENLINEAGE_API_KEY": "the OpenLineage client (docs/lineage.md)",
    "OPENLINEAGE_PARENT_ID": "the OpenLineage client; the DAGs' PlatformCommand sets it",
}
# Upper-case words with underscores the guide quotes that are no variable: Spark's error classes
# and the value of a Spark setting.
NOT_VARIABLES = {"UNRESOLVED_ROUTINE", "DATA_SOURCE_NOT_FOUND", "LAST_WIN"}
# Settings of the local engine the guide covers by family rather than by name: the metastore's
# connection (each platform has its own metastore) and the storage connector's (each platform
# reaches its object storage its own way); both families are described per platform.
FAMILIES = ("spark.hadoop.javax.jdo.", "spark.hadoop.datanucleus.", "spark.hadoop.hive.",
            "spark.hadoop.fs.")  # fmt: skip

ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:__?[A-Z0-9]+)+\b")
BACKTICKED = re.compile(r"`([^`\n]+)`")


def _guide() -> str:
    """The guide without its HTML comments (the merge markers name keys, not variables)."""
    return re.sub(r"<!--.*?-->", "", GUIDE.read_text(), flags=re.S)


def _documented_variables() -> tuple[set[str], tuple[str, ...]]:
    """The names docs/configuration.md documents, ``X_BASE`` (+ ``_A``, ``_B``) spelled out, and
    the prefixes it documents as families (``AIRFLOW__*``)."""
    text = CONFIGURATION.read_text()
    names = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    for base, group in re.findall(r"`([A-Z][A-Z0-9_]+)` \(\+ ([^)]*)\)", text):
        stem = base.rsplit("_", 1)[0]
        names |= {stem + suffix for suffix in re.findall(r"`(_[A-Z0-9_]+)`", group)}
    prefixes = tuple(re.findall(r"`([A-Z][A-Z0-9_]*)\*`", text))
    return names, prefixes


def test_every_variable_the_guide_names_is_documented() -> None:
    names, prefixes = _documented_variables()
    named = set(ENV_NAME.findall(_guide())) - NOT_VARIABLES
    unknown = sorted(
        n for n in named if n not in names and n not in THIRD_PARTY and not n.startswith(prefixes)
    )
    assert not unknown, (
        f"docs/deploy.md names variables docs/configuration.md does not document: {unknown} "
        "(document them there, or list a tool's own in THIRD_PARTY with who documents it)"
    )


def _profile_targets() -> set[str]:
    return set(yaml.safe_load(PROFILES.read_text())["lakehouse"]["outputs"])


def test_every_dbt_target_the_guide_names_exists() -> None:
    text = _guide()
    named = set(re.findall(r"--target[ =](\w+)", text))
    named |= set(re.findall(r"DBT_TARGET=(\w+)", text))
    named |= set(re.findall(r'target_name="(\w+)"', text))
    named |= set(re.findall(r"`(\w+)` target", text))
    named |= set(re.findall(r"target `(\w+)`", text))
    assert named >= {"cluster", "local"}, named  # the guide is about these two
    unknown = named - _profile_targets()
    assert not unknown, f"not in profiles/profiles.yml: {unknown}"


def _tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True)
    if listed.returncode != 0:  # not a git checkout: every file of the tree
        return [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*") if p.is_file()]
    return listed.stdout.split()


def test_every_project_file_the_guide_names_exists() -> None:
    """A path with a folder is checked where it says; a bare file name (``build_analytics.py``)
    must be some file of the project."""
    tracked = _tracked_files()
    names = {path.rsplit("/", 1)[-1] for path in tracked}
    roots = {path.split("/", 1)[0] for path in tracked}
    missing = []
    for token in BACKTICKED.findall(_guide()):
        token = token.strip()
        if not re.fullmatch(r"[\w./-]+", token) or token.startswith((".", "/")):
            continue
        if "/" in token:
            if token.split("/", 1)[0] in roots and not (REPO_ROOT / token).exists():
                missing.append(token)
        elif token.endswith((".py", ".md", ".yml", ".toml", ".sql")) and token not in names:
            missing.append(token)
    assert not missing, f"docs/deploy.md names files the project does not have: {missing}"


def test_every_lakehouse_command_the_guide_runs_exists() -> None:
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    used = set(re.findall(r"(?:bin/lakehouse|`lakehouse) ([a-z][a-z-]*)", _guide()))
    assert used, "the guide runs no lakehouse command: the pattern broke"
    assert used <= set(commands.choices), f"no such command: {used - set(commands.choices)}"


@pytest.fixture(params=["local, lake in a folder", "standalone, lake on S3"])
def engine_settings(request, settings: Settings, tmp_path: Path, monkeypatch) -> Settings:
    """The shipped settings, and the other end: a standalone cluster and a lake on a real S3 at
    an endpoint of its own (so every setting of spark_cluster.executor_conf and
    object_store.storage_conf is in the engine's)."""
    if request.param.startswith("local"):
        return settings
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path))
    monkeypatch.setenv("LAKEHOUSE_ENGINE__MODE", "standalone")
    monkeypatch.setenv("LAKEHOUSE_STORAGE__ROOT", "s3://bucket/prefix")
    monkeypatch.setenv("LAKEHOUSE_STORAGE__LOCAL_SERVER", "false")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.internal")
    return load_settings()


def test_every_engine_setting_is_in_the_guides_engine_contract(engine_settings: Settings) -> None:
    """A setting added to the local engine is one a cluster may need too: the guide must say."""
    text = _guide()
    conf = engine.spark_conf(engine_settings)
    named = {key for key in conf if re.search(re.escape(key) + r"(?![\w.])", text)}
    missing = [key for key in conf if key not in named and not key.startswith(FAMILIES)]
    assert not missing, f"docs/deploy.md's engine contract does not name: {missing}"
    assert "LAKEHOUSE_PII_SALT" in text  # the one engine setting that is an environment variable


def test_the_guides_links_to_its_own_sections_resolve() -> None:
    text = GUIDE.read_text()
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.M)
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}
    broken = sorted(set(re.findall(r"\]\(#([^)]+)\)", text)) - anchors)
    assert not broken, f"links to no heading of docs/deploy.md: {broken}"


def test_the_readme_and_the_architecture_link_the_guide() -> None:
    for doc in ("README.md", "docs/architecture.md"):
        assert "docs/deploy.md" in (REPO_ROOT / doc).read_text(), doc


# -- the `cluster` target, in every authentication mode the guide offers -----------------------

AUTH_MODES = {
    "NONE": {},
    "NOSASL": {},
    "LDAP": {"SPARK_CLUSTER_PASSWORD": "not-a-real-password"},  # pragma: allowlist secret
    "KERBEROS": {"SPARK_CLUSTER_KERBEROS_SERVICE": "spark"},
}


def _render_cluster_target(environment: dict[str, str]) -> dict[str, Any]:
    """The `cluster` output as dbt renders it from ``environment`` (dbt's own renderer)."""
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(environment)
    raw = yaml.safe_load(PROFILES.read_text())["lakehouse"]["outputs"]["cluster"]
    return ProfileRenderer({}).render_data(raw)


@pytest.mark.parametrize("auth", sorted(AUTH_MODES))
def test_the_cluster_target_connects_in_each_auth_mode(auth: str) -> None:
    """PyHive refuses a password outside LDAP/CUSTOM and a Kerberos service name outside
    KERBEROS before it opens a socket (ValueError); rendered right, the only failure left against
    a port nothing listens on is the connection itself."""
    from dbt.adapters.spark.connections import SparkCredentials
    from pyhive import hive
    from thrift.transport.TTransport import TTransportException

    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SPARK_CLUSTER_")},
        "SPARK_CLUSTER_HOST": "127.0.0.1",
        "SPARK_CLUSTER_PORT": "1",  # privileged, nothing listens: refused at once
        "SPARK_CLUSTER_USER": "lakehouse",
        "SPARK_CLUSTER_AUTH": auth,
        **AUTH_MODES[auth],
    }
    rendered = _render_cluster_target(environment)
    assert rendered["poll_interval"] == 1 and rendered["use_ssl"] is False
    creds = SparkCredentials.from_dict(
        {k: v for k, v in rendered.items() if k not in ("type", "threads")}
    )
    assert (creds.password is not None) == (auth == "LDAP")
    assert (creds.kerberos_service_name is not None) == (auth == "KERBEROS")
    with pytest.raises(TTransportException):
        hive.connect(host=creds.host, port=creds.port, username=creds.user, auth=creds.auth,
                     kerberos_service_name=creds.kerberos_service_name,
                     password=creds.password)  # fmt: skip


def test_the_cluster_target_turns_tls_on_from_the_environment() -> None:
    base = {"SPARK_CLUSTER_HOST": "h", "SPARK_CLUSTER_USER": "u"}
    assert _render_cluster_target({**base, "SPARK_CLUSTER_USE_SSL": "true"})["use_ssl"] is True
    assert _render_cluster_target({**base, "SPARK_CLUSTER_USE_SSL": "False"})["use_ssl"] is False


# -- the keys of lakehouse.yml and the jars of engine/pom.xml the guide names ------------------

SECTIONS = ("engine", "storage", "services")
KEY_PATH = re.compile("(?:" + "|".join(SECTIONS) + r")(?:\.[a-z_]+)+(?:\.\*)?")


def _is_key(model: type[BaseModel], parts: list[str]) -> bool:
    """Whether ``a.b.c`` (``*``: any key of a section) is a key of ``model``."""
    for i, part in enumerate(parts):
        if part == "*":
            return i == len(parts) - 1
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif i < len(parts) - 1:
            return False
    return True


def test_every_settings_key_the_guide_names_exists() -> None:
    """`storage.root`, `engine.metastore`, `engine.standalone.*`...: keys of Settings, not
    guesses. Names of lakehouse/stack/engine.py (`engine.running`) are functions, not keys."""
    named = {t.strip() for t in BACKTICKED.findall(_guide()) if KEY_PATH.fullmatch(t.strip())}
    assert {"storage.root", "storage.local_server", "engine.metastore", "engine.mode"} <= named
    unknown = sorted(
        t for t in named
        if not _is_key(Settings, t.split("."))
        and not (t.startswith("engine.") and callable(getattr(engine, t[7:], None)))
    )  # fmt: skip
    assert not unknown, f"docs/deploy.md names keys Settings does not have: {unknown}"


def test_the_guides_lakehouse_yml_is_valid() -> None:
    """Each ```yaml block of lakehouse.yml sections validates as those sections (no key guessed,
    no value refused)."""
    blocks = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), flags=re.S)
    checked = 0
    for block in blocks:
        data = yaml.safe_load(block)
        if "engine" in data:
            EngineConfig.model_validate(data["engine"])
            checked += 1
        if "storage" in data:
            assert StorageConfig.model_validate(data["storage"]).root, data["storage"]
            checked += 1
    assert checked >= 2, "the guide's lakehouse.yml block (engine, storage) is gone"


def test_the_guide_names_every_jar_engine_pom_fetches() -> None:
    """The jars a cluster's image needs are the ones `make setup` fetches: each artefact of
    engine/pom.xml and its pinned version are in the guide."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    root = ET.parse(POM).getroot()
    props = {p.tag.split("}")[1]: p.text for p in root.find("m:properties", ns)}

    def resolved(text: str) -> str:
        return re.sub(r"\$\{([^}]+)\}", lambda m: props[m.group(1)], text)

    text = _guide()
    missing = []
    for dep in root.find("m:dependencies", ns):
        artifact = resolved(dep.find("m:artifactId", ns).text)
        version = resolved(dep.find("m:version", ns).text)
        named = re.search(r"`[^`]*\b" + re.escape(artifact) + r"\b", text)
        if not named or version not in text:
            missing.append(f"{artifact} {version}")
    assert not missing, f"docs/deploy.md does not name these jars of engine/pom.xml: {missing}"
