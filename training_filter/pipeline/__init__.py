"""Pure, Django-free building blocks of a manifest build: URL keys, key indexes, per-shard filtering, publishing."""
