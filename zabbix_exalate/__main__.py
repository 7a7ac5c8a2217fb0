"""Lets `python -m zabbix_exalate` work like the zabbix-exalate command."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="zabbix-exalate")
