-- Run once by the postgres image on an empty data volume: the run ledger's own database.
-- (Airflow's metadata database is POSTGRES_DB; both belong to POSTGRES_USER.)
CREATE DATABASE xforce;
