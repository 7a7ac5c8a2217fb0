"""Lets `python -m zabbix_exalate` work like the zabbix-exalate command."""
from .cli import run

if __name__ == "__main__":
    run()
