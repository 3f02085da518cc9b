"""Judging an extract: Great Expectations row suites (in a worker process, behind ``gx_compat``),
extract-level tallies, schema drift, table-level suites, cross-dataset order, deadlines and Data Docs."""
