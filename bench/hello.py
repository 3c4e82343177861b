"""The baseline: a hello-world Flask app, served by the same gunicorn.conf.py as ScanJoin."""

from flask import Flask, Response, redirect

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello"


@app.post("/")
def posted() -> Response:
    """A form posted to hello-world answers as ScanJoin's forms do: 303 to the next page."""
    return redirect("/", 303)  # type: ignore[return-value]


@app.get("/healthz")
def health() -> str:
    return "ok"
