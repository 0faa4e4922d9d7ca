"""Scale-out: a Dask cluster, parameter sweeps and batch scoring of large files."""
