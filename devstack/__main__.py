"""``python -m devstack`` entry point."""

from devstack.cli import main

if __name__ == "__main__":
    main()
