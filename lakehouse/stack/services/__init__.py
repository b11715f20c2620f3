"""Local stand-ins for source systems: Kafka broker, PostgreSQL server."""
