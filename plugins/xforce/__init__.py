"""xforce: the cross-force rural crime data exchange.

Plain functions over Arrow tables; the Airflow DAGs in ``dags/`` only wire them together.
Heavy imports (Great Expectations, pyproj, Airflow) happen inside the functions that need them,
so importing this package is cheap enough for DAG parsing.
"""

__version__ = "0.1.0"
