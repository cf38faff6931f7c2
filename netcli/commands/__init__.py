"""netcli/commands"""
