"""netcli/io"""
