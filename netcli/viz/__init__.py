"""netcli/viz"""
