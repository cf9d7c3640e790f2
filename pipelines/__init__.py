"""The DAG: config → Ray stages → tables on storage; the CLI. The only layer that imports Ray."""
