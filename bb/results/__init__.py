"""Results: the grade report model and the formats it is written in, for one grade or a
class."""
