"""``python -m npistack.cli``: the same entry point as the ``npistack`` script."""

from npistack.cli import main

if __name__ == "__main__":  # pragma: no cover
    main()
