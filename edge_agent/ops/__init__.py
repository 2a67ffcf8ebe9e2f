"""Running like an appliance: systemd notification and watchdog, metrics, structured logs."""
