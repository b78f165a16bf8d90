"""Pass infrastructure: the Pass protocol, registry, pipeline text, manager and instruments."""
