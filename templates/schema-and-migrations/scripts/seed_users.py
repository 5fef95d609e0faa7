"""Load fake users into users(name, email), to rehearse the data migration on real rows.

Run it at the revision before your last migration (``alembic upgrade head-1``), then run
``alembic upgrade head`` and look at what became of the names:

    python scripts/seed_users.py 5000
    psql "$DATABASE_URL" -c "SELECT name FROM users LIMIT 5"   # before
    alembic upgrade head
    psql "$DATABASE_URL" -c "SELECT first_name, last_name, email_normalized FROM users LIMIT 5"

The grader loads names like these: accents, multi-word first and last names, mixed-case email
addresses that differ beyond their case.
"""

import os
import random
import sys

import psycopg

#: The same default as app/config.py.
DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://app:app@localhost:5432/app")

FIRST_NAMES = ["Anna", "José", "Zoë", "Mary Ann", "Jean-Luc", "Björn", "Aiko", "Chidi"]
LAST_NAMES = ["Smith", "van der Berg", "de la Cruz", "O'Neil", "Müller", "García Márquez"]


def main(count: int) -> None:
    rng = random.Random()
    with psycopg.connect(DATABASE_URL) as conn, conn.cursor() as cursor:
        with cursor.copy("COPY users (name, email) FROM STDIN") as copy:
            for index in range(count):
                name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
                email = f"User.{index}.{rng.randrange(10**6)}@Example.com"
                copy.write_row((name, email))
    print(f"loaded {count} users")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
