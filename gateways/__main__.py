from gateways.cli import app

app()
