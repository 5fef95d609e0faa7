"""Exercise packs: their manifests as typed models, scaffolding projects from them, and
the learner's project on disk (solution diffs, reset backups)."""
