"""The Delta jars fetched at set-up match the Python package and never shadow Spark's own."""

from importlib.metadata import version
from pathlib import Path

import pyspark

from lakehouse.stack.jars import artifact_of, engine_jars, pyspark_jar_dir


def test_artifact_names_strip_versions() -> None:
    assert artifact_of(Path("jackson-core-2.13.5.jar")) == "jackson-core"
    assert artifact_of(Path("delta-spark_4.2_2.13-4.4.0.jar")) == "delta-spark_4.2_2.13"
    assert artifact_of(Path("zstd-jni-1.5.7-3.jar")) == "zstd-jni"


def test_delta_jar_is_the_one_pip_utils_names() -> None:
    """delta-spark's pip_utils asks for delta-spark_<spark major.minor>_2.13:<its own version>."""
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    expected = f"delta-spark_{spark_minor}_2.13-{version('delta-spark')}.jar"
    assert expected in {j.name for j in engine_jars()}


def test_no_jar_duplicates_one_pyspark_ships() -> None:
    shipped = {artifact_of(j) for j in pyspark_jar_dir().glob("*.jar")}
    clashes = [j.name for j in engine_jars() if artifact_of(j) in shipped]
    assert clashes == []
