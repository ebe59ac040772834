"""Statements compiled once and run on the driver (core.platform.db.compile_for_driver, the
search's hot path) return what SQLAlchemy returns for them, with the same values."""

from __future__ import annotations

import pytest
from sqlalchemy import Integer, Text, any_, bindparam, column, func, literal, select, values
from sqlalchemy.dialects.postgresql import ARRAY

from core.platform.db import compile_for_driver, driver_rows, session_scope


def _statement():  # type: ignore[no-untyped-def]
    numbers = values(column("n", Integer), column("word", Text), name="numbers").data(
        [(1, "one"), (2, "two"), (3, "three"), (4, "four"), (5, "five")]
    )
    return (
        select(
            numbers.c.n,
            numbers.c.word,
            (numbers.c.n * literal(10)).label("tens"),  # a constant the statement carries
            func.concat(bindparam("prefix", type_=Text), numbers.c.word).label("labelled"),
            literal(True).label("flag"),  # a constant whose type converts it (Boolean)
        )
        .where(numbers.c.n == any_(bindparam("wanted", type_=ARRAY(Integer))))  # a converted value
        .order_by(numbers.c.n.desc())
        .limit(bindparam("most", type_=Integer, literal_execute=True))  # written into the text
    )


def test_a_statement_on_the_driver_returns_what_sqlalchemy_returns(database: str) -> None:
    statement = _statement()
    compiled = compile_for_driver(statement, {"most": 2})
    assert "LIMIT 2" in compiled.sql and "$1" in compiled.sql and "%(" not in compiled.sql
    for wanted in ([1, 2, 3], [4], [5, 1, 2, 3]):  # one text for any number of values
        arguments = {"prefix": "n=", "wanted": wanted}
        with session_scope() as session:
            through_driver = [tuple(row) for row in driver_rows(session, compiled, arguments)]
            through_session = [tuple(row) for row in session.execute(statement, arguments | {"most": 2})]
        assert through_driver == through_session
    with session_scope() as session:
        (row,) = driver_rows(session, compile_for_driver(statement, {"most": 1}), {"prefix": "#", "wanted": [3, 4]})
    assert (row.n, row.word, row.tens, row.labelled, row.flag) == (4, "four", 40, "#four", True)


def test_a_value_left_out_is_an_error_not_a_null(database: str) -> None:
    compiled = compile_for_driver(_statement(), {"most": 2})
    with session_scope() as session, pytest.raises(KeyError, match="prefix"):
        driver_rows(session, compiled, {"wanted": [1]})
