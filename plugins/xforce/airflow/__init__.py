"""Airflow glue, and the only place that imports Airflow: task adapters, callbacks, Asset
definitions, the environment ``xforce run`` gives Airflow, and the UI plugin's views."""
