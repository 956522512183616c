"""Audits of a synthetic cohort against real members and held-out non-members.

Importable on their own: they depend on clinsynth's data model (schema, cohort, grid), never on the
generator, so they can audit any synthetic cohort in a schema's layout.
"""
