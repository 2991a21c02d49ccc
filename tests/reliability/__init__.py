"""plait under faults, bad input and load: nothing lost, nothing run twice, no one let in (docs/reliability.md)."""
