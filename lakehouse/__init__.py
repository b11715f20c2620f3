"""Local control plane of the lakehouse: configuration, the Spark engine and the pipeline runner."""
