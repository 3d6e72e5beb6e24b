"""`python -m crewkit` is the `crewkit` command (the console starts resumes this way)."""

from crewkit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
