"""The engine's extra jars: Delta Lake, fetched from Maven Central into a git-ignored cache.

Maven resolves the transitive closure of ``engine/pom.xml``. That closure repeats libraries pyspark
already ships, in older versions (jackson 2.13 against Spark's 2.21, hadoop 3.4 against 3.5...);
putting both on one classpath is how ``NoSuchMethodError`` happens. So after the download we keep
only the jars whose artifact pyspark does not ship.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from lakehouse.core.config import REPO_ROOT

JAR_DIR = REPO_ROOT / ".cache" / "jars"
_VERSION_SUFFIX = re.compile(r"-\d[\w.+-]*\.jar$")


def artifact_of(jar: Path) -> str:
    """``jackson-core-2.13.5.jar`` -> ``jackson-core``."""
    return _VERSION_SUFFIX.sub("", jar.name)


def pyspark_jar_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def prune(jar_dir: Path = JAR_DIR) -> list[Path]:
    """Delete downloaded jars whose artifact pyspark already ships; return the ones removed."""
    shipped = {artifact_of(j) for j in pyspark_jar_dir().glob("*.jar")}
    # RoaringBitmap 0.9's `shims` is folded into the RoaringBitmap 1.x that Spark ships.
    shipped.add("shims")
    removed = [j for j in sorted(jar_dir.glob("*.jar")) if artifact_of(j) in shipped]
    for jar in removed:
        jar.unlink()
    return removed


def engine_jars(jar_dir: Path = JAR_DIR) -> list[Path]:
    """The jars to put on the engine's classpath; fail loudly if set-up has not fetched Delta."""
    jars = sorted(jar_dir.glob("*.jar"))
    if not any(j.name.startswith("delta-spark_") for j in jars):
        raise FileNotFoundError(
            f"no Delta jars in {jar_dir}: run `make setup` (it fetches them from Maven Central)"
        )
    return jars


if __name__ == "__main__":
    gone = prune(Path(sys.argv[1]) if len(sys.argv) > 1 else JAR_DIR)
    kept = engine_jars(Path(sys.argv[1]) if len(sys.argv) > 1 else JAR_DIR)
    print(
        f"jars: kept {len(kept)} ({', '.join(j.name for j in kept)}), "
        f"dropped {len(gone)} that pyspark already ships"
    )
