"""Grading: a project through its stages and grader suite, whole packs (dev check), whole
classes, and class grading spread over workers."""
