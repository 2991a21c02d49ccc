"""Tests of `plait.runtime`; `support` holds the helpers the runtime and state tests share."""
