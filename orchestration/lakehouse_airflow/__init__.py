"""What the lakehouse DAGs share: their settings, assets, task defaults and alerts.

It runs inside the Airflow environment (``.venv-airflow``); the platform's own code (dlt loaders,
dbt, publish) stays in ``.venv`` and is reached through its executables, never imported.
"""
