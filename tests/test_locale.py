"""The page language: the worker's choice, else the browser's Accept-Language, else Chinese."""

from __future__ import annotations

from flask import Flask
from flask_babel import get_locale

from app import LOCALES, _preferred


def _locale(app: Flask, header: str | None) -> str:
    headers = {"Accept-Language": header} if header is not None else {}
    with app.test_request_context("/", headers=headers):
        return str(get_locale())


def test_the_browsers_preference_else_chinese(app: Flask) -> None:
    assert _locale(app, "en-US,en;q=0.9") == "en"
    assert _locale(app, "zh-CN,zh;q=0.9,en;q=0.8") == "zh_Hans_CN"
    assert _locale(app, "fr-FR") == "zh_Hans_CN"
    assert _locale(app, None) == "zh_Hans_CN"
    assert set(LOCALES) == {"zh_Hans_CN", "en"}


def test_short_headers_are_cached_long_ones_are_not(app: Flask) -> None:
    _preferred.cache_clear()
    assert _locale(app, "en-GB,en;q=0.9") == "en"
    assert _locale(app, "en-GB,en;q=0.9") == "en"
    assert _preferred.cache_info().hits == 1
    long = ",".join(f"x{n}-yy;q=0.1" for n in range(40)) + ",en;q=0.9"
    assert len(long) > 200
    assert _locale(app, long) == "en"
    assert _preferred.cache_info().currsize == 1, "a long header, which anyone can send, is not kept"
