"""`python -m services.cli ...`: the `chancery` command without the installed script."""

from services.cli.main import main

if __name__ == "__main__":
    main()
