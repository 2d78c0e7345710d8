"""The AST bench's damage generator keeps only damage a parser can see (bench/quality_ast.py)."""

import random

from bench.quality_ast import damaged, drops_a_closer
from iquest_core.data import syntax

RUST_MACROS = """use std::collections::HashMap;

fn counts(words: &[&str]) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for word in words {
        *out.entry(word.to_string()).or_insert(0) += 1;
    }
    out
}

fn main() {
    let words = vec![
        "alpha",
        "beta",
        "alpha",
    ];
    println!(
        "{:?} from {} words",
        counts(&words),
        words.len()
    );
}
"""

PYTHON_FLAT = """import os
import sys

ROOT = os.path.dirname(__file__)
NAME = 'demo'


class Config:
    verbose = False
    level = 3

    def describe(self):
        return self.level * 2

    def enabled(self):
        return not self.verbose


def main():
    config = Config()
    print(config.describe())
    return config.enabled()
"""

PYTHON_ESCAPES_IN_LITERALS = """# keep a < b & c ordered, see "notes"
import re

PATTERN = re.compile(r'[<>&]')


def quote(text):
    '''Replace < and > by entities, "safely".'''
    return PATTERN.sub('', text)
"""


def _copies(text, language, kind, seeds=40):
    return [damaged(text, language, random.Random(seed))[kind] for seed in range(seeds)]


def test_prose_never_goes_into_a_macro_token_tree():
    copies = [c for c in _copies(RUST_MACROS, "rust", "prose") if c is not None]
    assert len(copies) == 40
    assert all(not syntax.parse(copy, "rust").clean for copy in copies)


def test_a_truncation_drops_a_closing_delimiter():
    copies = _copies(PYTHON_FLAT, "python", "truncated")
    kept = [c for c in copies if c is not None]
    assert kept and all(not syntax.parse(copy, "python").clean for copy in kept)
    elsewhere = [c for c in _copies(PYTHON_FLAT, "python", "cut_elsewhere") if c is not None]
    assert any(syntax.parse(copy, "python").clean for copy in elsewhere)  # the invisible cuts exist


def test_escaping_only_inside_literals_is_no_damage():
    assert _copies(PYTHON_ESCAPES_IN_LITERALS, "python", "html_escaped", seeds=1) == [None]
    in_code = PYTHON_ESCAPES_IN_LITERALS + "\n\nSMALL = len(PATTERN.pattern) < 10\n"
    assert _copies(in_code, "python", "html_escaped", seeds=1)[0] is not None


def test_a_cut_before_the_opening_delimiter_is_not_a_truncation():
    text = 'environ = {}\nserver = ("localhost", 80)\nenviron["SERVER_PORT"] = server[1]\n'
    parsed = syntax.parse(text, "python")
    assert not drops_a_closer(parsed, text.index("er[1]"))  # `...= serv`: a complete expression
    assert drops_a_closer(parsed, text.index("1]"))  # `...= server[`: the opener is kept
