"""The stack a grade runs on: the Docker engine (the one module that talks to it), course
images, isolation, readiness probes, the journal of grades in flight, and doctor's checks."""
