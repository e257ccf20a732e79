"""RayJob entrypoint of the `judge` stage (see jobs/_entry.py)."""

from jobs._entry import main

if __name__ == "__main__":
    raise SystemExit(main("judge"))
