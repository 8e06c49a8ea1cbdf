"""The group kit: a resource that only gathers others."""
