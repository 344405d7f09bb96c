"""``python -m restorekit`` (what ``torchrun -m restorekit`` runs)."""

from restorekit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
