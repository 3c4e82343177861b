"""The baseline: a hello-world Flask app, served by the same gunicorn.conf.py as ScanJoin."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"


@app.get("/healthz")
def health() -> str:
    return "ok"
