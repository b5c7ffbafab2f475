"""`python -m chatkit` and the `chatkit` script: Ctrl-C while the command line is still importing is an
interrupt like any other (exit 130, one line), not a traceback."""

import sys


def run() -> None:
    try:
        from chatkit.cli import main
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
