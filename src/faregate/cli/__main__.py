"""`python -m faregate.cli`."""

from faregate.cli import main

if __name__ == "__main__":
    main()
