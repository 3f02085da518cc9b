"""The "Data exchange" view: data from the run ledger and HTML for the Airflow UI plugin.

Plain functions (no Airflow import): ``plugins/xforce_ui_plugin.py`` serves them through the
api-server with Airflow's own authentication.
"""
