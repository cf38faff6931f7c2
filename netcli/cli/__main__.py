"""`python -m netcli.cli`, as the `netcli` command."""
from . import main

main()
