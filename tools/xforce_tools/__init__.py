"""Developer tools, not shipped to Airflow: the extract generator (the test oracle, independent of the
hub's own configuration) and the benchmark behind ``make bench``."""
