"""zabbix-exalate: checks that let Zabbix watch Exalate sync nodes."""

__version__ = "0.1.0"
