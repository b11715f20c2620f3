"""dlt loaders that land each source system in the bronze layer as Delta tables."""
