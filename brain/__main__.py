"""`python -m brain`."""

from brain.quick import main

if __name__ == "__main__":
    main()
