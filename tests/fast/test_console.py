"""What a person sees of the platform's progress: module logs printed as `make run` reads."""

from __future__ import annotations

import logging

from lakehouse.core import console


def test_steps_details_and_warnings_print_as_make_run_reads(capsys) -> None:
    console.configure()
    console.configure()  # twice: still one line per record
    logging.getLogger("lakehouse.pipeline.steps").info("ingest ...")
    logging.getLogger("lakehouse.pipeline.loads").info("crm: read 3, inserted 3")
    logging.getLogger("ingestion.retry").info("crm: the CRM API failed (attempt 1 of 3)")
    logging.getLogger("lakehouse.publish.publisher").info("snowflake: stage 1.0s")
    logging.getLogger("lakehouse.pipeline.steps").info("tables built:\n    gold  gold.x  1 rows")
    logging.getLogger("lakehouse.transform.warmup").warning("engine warm-up failed: boom")
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "[lakehouse] ingest ...",
        "[lakehouse]   crm: read 3, inserted 3",
        "[lakehouse]   crm: the CRM API failed (attempt 1 of 3)",
        "[lakehouse]   snowflake: stage 1.0s",
        "[lakehouse] tables built:",
        "    gold  gold.x  1 rows",
    ]
    assert err == "[lakehouse] warning: engine warm-up failed: boom\n"


def test_a_library_caller_keeps_the_records(caplog) -> None:
    """Below the command line nothing prints: a test or a task reads the records."""
    with caplog.at_level(logging.INFO, logger="lakehouse"):
        logging.getLogger("lakehouse.pipeline.loads").info("fx: read 28")
    assert [r.getMessage() for r in caplog.records] == ["fx: read 28"]
