"""The Zabbix side: agent configurations, agent install and check, the sender, the frontend API, the templates."""
