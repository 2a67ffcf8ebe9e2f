"""`edge-agent demo`: a whole store on this machine, with no hardware.

It writes a demo config and database into a fresh folder, starts the agent, and runs simulated shoppers
who check in with the app and buy at a simulated till on a pty (more often what they were shown), and
headless players on every touchpoint (open the printed URLs in a browser to watch the screens too). The
offer bundle holds a 25 % holdout, so `edge-agent report --config DIR/edge-agent.toml` afterwards shows
what each offer sold, arm against arm. With an MQTT broker (a `mosquitto` on PATH the demo starts itself,
or `--broker`) the cloud simulator signs and sends the offers and the roster and collects what the store
sends up; without one the demo says so and applies the same bundle and roster locally.
Where `dbus-daemon` is installed, shoppers with the app's rotating BLE token also walk the floor, heard by
the real bleak scanner through a simulated BlueZ on a private D-Bus; without it the demo runs without BLE.
"""

from .run import run_demo
from .store import demo_offers

__all__ = ["demo_offers", "run_demo"]
