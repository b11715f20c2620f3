"""The project's dbt conventions as dbt-score rules (`make lint`; docs/development.md).

dbt-score loads this namespace (`dbt_score_rules`, its default) beside its built-in rules; the
Makefile puts dbt_project/lint on the path. Each rule is one convention the project would
otherwise only remember: names per layer, one properties file per folder, owners, contracts,
tested publish keys, unit tests, documented sources and exposures for gold.
"""
