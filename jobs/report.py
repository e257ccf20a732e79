"""RayJob entrypoint of the `report` stage (see jobs/_entry.py)."""

from jobs._entry import main

if __name__ == "__main__":
    raise SystemExit(main("report"))
