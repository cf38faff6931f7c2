"""What the `netcli` commands do, as functions a notebook can call too (the click commands that
call them: netcli/cli/): score.py (test, predict), timing.py (time), check.py (check, config,
layers), convert.py (export, convert), extract.py, device_query.py, absent_data.py."""
